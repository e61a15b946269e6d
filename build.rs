//! Compiles the KServe v2 gRPC API (`proto/grpc_predict_v2.proto`) with `protox`, a
//! protobuf compiler in Rust: no `protoc` binary is needed and nothing is downloaded.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/grpc_predict_v2.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .bytes(".inference")
        .compile_fds(descriptors)?;
    Ok(())
}
