//! Replays every saved fuzz input — the seed corpus under `fuzz/corpus/<target>/`
//! and every crash ever found under `fuzz/artifacts/<target>/` — through the
//! same invariant checks as the fuzz targets, so that a fixed crash stays fixed
//! without cargo-fuzz or a nightly compiler.

use device_grant_fuzz as fuzz_checks;

use std::path::{Path, PathBuf};

fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(inputs(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

#[test]
fn every_saved_fuzz_input_passes_its_target_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (name, check) in fuzz_checks::TARGETS {
        let corpus = inputs(&root.join("corpus").join(name));
        assert!(!corpus.is_empty(), "no seed corpus for target {name}");
        for path in corpus
            .into_iter()
            .chain(inputs(&root.join("artifacts").join(name)))
        {
            let data = std::fs::read(&path).expect("readable input");
            replayed += 1;
            if std::panic::catch_unwind(|| check(&data)).is_err() {
                failures.push(path.display().to_string());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {replayed} saved fuzz inputs fail their checks:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_artifact_folder_names_a_target() {
    let artifacts = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/artifacts");
    let Ok(entries) = std::fs::read_dir(&artifacts) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.path().is_dir() {
            assert!(
                fuzz_checks::TARGETS.iter().any(|(t, _)| *t == name),
                "fuzz/artifacts/{name} is not replayed: no target has that name"
            );
        }
    }
}
