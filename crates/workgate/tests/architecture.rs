//! ARCHITECTURE.md stays a true map: every source file of the workspace is named in it, by its
//! path inside its crate's `src/` (`web/edits.rs`, or with the crate: `workgate/src/keyfile.rs`), its file name (`edits.rs`) or, for a module
//! folder of one file per page or feature, the folder (`web/admin/`). A crate root (`lib.rs`,
//! `main.rs`) and a folder's `mod.rs` count as named when their crate or folder is.

use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_source_file_is_named_in_the_map() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let map = std::fs::read_to_string(root.join("ARCHITECTURE.md")).expect("ARCHITECTURE.md");
    let mut missing = Vec::new();
    for krate in std::fs::read_dir(root.join("crates")).expect("crates/").flatten() {
        let name = krate.file_name().to_string_lossy().to_string();
        let src = krate.path().join("src");
        if !src.is_dir() {
            continue;
        }
        let mut files = Vec::new();
        sources(&src, &mut files);
        for file in files {
            let relative = file.strip_prefix(&src).expect("inside src").to_string_lossy().replace('\\', "/");
            let file_name = file.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let folder = relative.rsplit_once('/').map(|(dir, _)| format!("{dir}/"));
            let named = map.contains(&format!("`{relative}`"))
                || map.contains(&format!("{name}/src/{relative}`"))
                || map.contains(&format!("`{file_name}`"))
                || folder.as_ref().is_some_and(|f| map.contains(&format!("`{f}`")))
                || (matches!(file_name.as_str(), "lib.rs" | "main.rs") && map.contains(&name))
                || (file_name == "mod.rs" && folder.as_ref().is_some_and(|f| map.contains(f.as_str())));
            if !named {
                missing.push(format!("crates/{name}/src/{relative}"));
            }
        }
    }
    missing.sort();
    assert!(
        missing.is_empty(),
        "ARCHITECTURE.md names none of these files; add each where it belongs:\n{}",
        missing.join("\n")
    );
}
