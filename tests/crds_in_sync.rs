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
