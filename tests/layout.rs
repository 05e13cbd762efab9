//! The layout ADR 0017 promises, checked on the source tree: the query API
//! builds without the command API, and no source file of the API crates
//! (command-api, query-api, http) is longer than 800 lines before its
//! tests.

use std::fs;
use std::path::{Path, PathBuf};

/// Longest an API crate's source file may be, its `#[cfg(test)]` part left
/// out.
const MAX_LINES: usize = 800;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_query_api_does_not_depend_on_the_command_api() {
    let text =
        fs::read_to_string(root().join("query-api/Cargo.toml")).expect("query-api/Cargo.toml");
    let manifest: toml::Table = toml::from_str(&text).expect("a valid manifest");
    for section in ["dependencies", "build-dependencies"] {
        let Some(deps) = manifest.get(section).and_then(|d| d.as_table()) else {
            continue;
        };
        assert!(
            !deps.contains_key("basketry-command-api"),
            "query-api's [{section}] names basketry-command-api"
        );
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("a source directory") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_api_source_file_is_longer_than_800_lines_before_its_tests() {
    let mut files = Vec::new();
    for krate in ["command-api/src", "query-api/src", "http/src"] {
        rust_files(&root().join(krate), &mut files);
    }
    assert!(files.len() > 20, "found only {} files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let text = fs::read_to_string(path).expect("a source file");
            let lines = text
                .lines()
                .take_while(|line| line.trim() != "#[cfg(test)]")
                .count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "longer than {MAX_LINES} lines: {long:?}");
}
