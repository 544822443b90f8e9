//! Compiles every `.proto` under `madoguchi/` with protox (a pure-Rust
//! protobuf compiler, so no `protoc` is needed) and generates prost messages
//! and tonic clients and servers from the resulting descriptor set. The
//! descriptor set is also written out for gRPC server reflection.

use std::path::{Path, PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut protos = Vec::new();
    collect_protos(&root.join("madoguchi"), &mut protos)?;
    protos.sort();

    let descriptors = protox::compile(&protos, [root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out_dir.join("madoguchi_descriptor.bin");
    std::fs::write(
        &descriptor_path,
        prost::Message::encode_to_vec(&descriptors),
    )?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .file_descriptor_set_path(&descriptor_path)
        .skip_protoc_run()
        .compile_fds(descriptors)?;

    // The directory too: cargo then rescans it, so a newly added .proto
    // reruns the build (a list of the files alone would miss new ones).
    println!(
        "cargo:rerun-if-changed={}",
        root.join("madoguchi").display()
    );
    for proto in &protos {
        println!("cargo:rerun-if-changed={}", proto.display());
    }
    Ok(())
}

fn collect_protos(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(&path, out)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            out.push(path);
        }
    }
    Ok(())
}
