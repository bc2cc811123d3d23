//! Generates the shoal.v1 code with the vendored protoc, so that a fresh
//! machine needs no system protoc.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    let files = [
        "proto/shoal/v1/objects.proto",
        "proto/shoal/v1/control.proto",
        "proto/shoal/v1/local.proto",
        "proto/shoal/v1/dispatcher.proto",
        "proto/shoal/v1/ca.proto",
        "proto/shoal/v1/raft.proto",
        "proto/shoal/v1/logs.proto",
    ];
    tonic_build::configure()
        // Objects travel inside Raft log entries, which openraft serializes
        // with serde.
        .type_attribute(".", "#[derive(serde::Serialize, serde::Deserialize)]")
        // A secret's data must never reach a log line through `{:?}` (of the
        // spec, a `Secret`, a create request or a node's assignments): its
        // Debug is written by hand in `secret_debug.rs`, without the data.
        .skip_debug(".shoal.v1.SecretSpec")
        .compile_protos(&files, &["proto"])?;
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    Ok(())
}
