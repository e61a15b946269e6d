//! Placeholder until the preprocessing module lands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preprocess {
    Resnet50,
    Mobilenet,
}
