//! The sample library: images listed in `val_map.txt`, decoded and preprocessed into
//! RAM before any timing ([`dataset`], [`preprocess`]), and `.npy` files ([`npy`]).
pub mod dataset;
pub mod npy;
pub mod preprocess;
