//! `crds/` must hold exactly what `cmk-operator crd` prints, or users would
//! install a schema that differs from the one the operator was built with.

#[test]
fn crds_directory_matches_generated_crds() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/crds/cosmoscmk.io.yaml");
    let on_disk = std::fs::read_to_string(path).expect("crds/cosmoscmk.io.yaml exists");
    let generated = cmk_operator::api::crds_yaml();
    assert!(
        on_disk == generated,
        "crds/cosmoscmk.io.yaml is out of date with the Rust types; regenerate it with:\n    cargo run -q --bin cmk-operator -- crd > crds/cosmoscmk.io.yaml"
    );
}

/// kubectl warns on `format: uint64`, and integer bounds read `24.0` unless tidied.
#[test]
fn crds_carry_no_unknown_formats_or_float_bounds() {
    let yaml = cmk_operator::api::crds_yaml();
    assert!(!yaml.contains("format: uint"), "an unsigned format is left");
    for line in yaml.lines() {
        let t = line.trim();
        if t.starts_with("minimum:") || t.starts_with("maximum:") {
            assert!(!t.contains('.'), "a float bound: {t}");
        }
    }
    assert!(yaml.contains("name: Reason"), "a Ready-reason column");
}
