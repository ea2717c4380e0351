//! Generates the collections table of `src/entities.rs` from the declaration file:
//! `collections.json` at the repository root, or the file `EDGESYNC_COLLECTIONS` names
//! (absolute, or relative to the repository root), validated first (`src/declaration.rs`).
//! An invalid file fails the build with one line per problem.

use std::path::{Path, PathBuf};

#[path = "src/declaration.rs"]
mod declaration;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let root = manifest.join("..").join("..");
    let root = root.canonicalize().unwrap_or(root);
    println!("cargo:rerun-if-env-changed={}", declaration::ENV_VAR);
    println!("cargo:rerun-if-changed=src/declaration.rs");
    let file = match std::env::var_os(declaration::ENV_VAR).filter(|v| !v.is_empty()) {
        Some(p) if Path::new(&p).is_absolute() => PathBuf::from(p),
        Some(p) => root.join(p),
        None => root.join(declaration::FILE_NAME),
    };
    let file = file.canonicalize().unwrap_or(file);
    println!("cargo:rerun-if-changed={}", file.display());
    // For the unit tests that compare the table with its file.
    println!("cargo:rustc-env=EDGESYNC_COLLECTIONS_FILE={}", file.display());

    let fail = |lines: &[String]| -> ! {
        eprintln!("error: collections declaration {}:", file.display());
        for l in lines {
            eprintln!("  {l}");
        }
        std::process::exit(1)
    };
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| fail(&[format!("cannot read it: {e}")]));
    let decl = declaration::parse(&text).unwrap_or_else(|errors| fail(&errors));
    let shown = match file.strip_prefix(&root) {
        Ok(rel) => rel.display().to_string(),
        Err(_) => file.display().to_string(),
    };
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR")).join("entities_table.rs");
    let table = declaration::rust_table(&decl, &shown);
    if std::fs::read_to_string(&out).ok().as_deref() != Some(table.as_str()) {
        std::fs::write(&out, table).unwrap_or_else(|e| fail(&[format!("cannot write {}: {e}", out.display())]));
    }
}
