//! The image as `deploy/image/build` writes it: an OCI image layout archive
//! under target/image/, built with no registry and no container engine. Its
//! blobs, config and layers are checked against the OCI layout rules and
//! against the Dockerfile's runtime stage; then its layers are unpacked into a
//! bundle and run by `runc` as uid 65532 with a read-only root, no
//! capabilities and a network namespace of its own (loopback only).
//!
//! Needs root, mmdebstrap, jq and runc (Debian packages, which .ci/run
//! installs): without them the tests fail, they do not skip. The first run
//! builds the release binary (minutes on 2 cores); the image itself takes
//! about half a minute.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const MAX_COMPRESSED_BYTES: u64 = 30_000_000;
const NONROOT: u32 = 65532;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} cannot run: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn require_tool(tool: &str, version_arg: &str) {
    if let Err(e) = Command::new(tool).arg(version_arg).output() {
        panic!("{tool} is required ({e}); apt-get install -y {tool} (.ci/run does)");
    }
}

fn require_root() {
    let status = fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("effective uid");
    assert_eq!(
        uid, "0",
        "building and running the image needs root (mmdebstrap's root mode, runc, and \
         unpacking layers with their owners); CI runs as root"
    );
}

fn sha256_hex(path: &Path) -> String {
    let out = run(Command::new("sha256sum").arg(path));
    String::from_utf8(out.stdout).expect("utf-8")[..64].to_owned()
}

fn read_json(path: &Path) -> Value {
    let text =
        fs::read_to_string(path).unwrap_or_else(|e| panic!("{} unreadable: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

/// The runtime stage of the Dockerfile, as users build it with a registry.
struct RuntimeStage {
    from: String,
    binary_path: String,
    user: String,
    entrypoint: Value,
    cmd: Value,
}

fn dockerfile_runtime_stage() -> RuntimeStage {
    let text = fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile");
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("FROM "))
        .expect("a FROM line");
    let stage = &lines[start..];
    let value = |keyword: &str| -> String {
        let found: Vec<&str> = stage
            .iter()
            .filter_map(|l| l.strip_prefix(keyword))
            .collect();
        assert_eq!(found.len(), 1, "one {keyword}in the runtime stage");
        found[0].trim().to_owned()
    };
    let copy = value("COPY --from=build ");
    let json_array = |s: String| -> Value {
        let v: Value = serde_json::from_str(&s).expect("exec form (a JSON array)");
        assert!(v.is_array(), "{s} is an array");
        v
    };
    RuntimeStage {
        from: value("FROM "),
        binary_path: copy
            .split_whitespace()
            .nth(1)
            .expect("COPY dest")
            .to_owned(),
        user: value("USER "),
        entrypoint: json_array(value("ENTRYPOINT ")),
        cmd: json_array(value("CMD ")),
    }
}

/// The built image: its unpacked layout and the root filesystem its layers
/// make, shared by the tests of this binary (built once).
struct Image {
    /// The cargo target directory the image was built in (target/).
    target_dir: PathBuf,
    /// This test's scratch space there.
    scratch: PathBuf,
    layout: PathBuf,
    manifest: Value,
    config: Value,
    /// Each layer uncompressed, in order, and the paths it holds.
    layers: Vec<(PathBuf, Vec<String>)>,
    bundle: PathBuf,
    rootfs: PathBuf,
    build_seconds: f64,
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("{digest} is a sha256 digest"));
    layout.join("blobs/sha256").join(hex)
}

/// `deploy/image/build`, without what cargo sets for this test binary:
/// build scripts (ring's) rerun when those change, so the release build
/// would differ from the one the script makes from a shell and be rebuilt
/// (minutes) each time. Shared with `chart_on_node`.
pub(crate) fn image_build_command() -> Command {
    let mut build = Command::new(repo_root().join("deploy/image/build"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name == "OUT_DIR"
            || name == "CARGO_TARGET_TMPDIR"
            || [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_BIN_",
                "CARGO_CRATE_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|p| name.starts_with(p))
        {
            build.env_remove(name.as_ref());
        }
    }
    build
}

fn image() -> &'static Image {
    static IMAGE: OnceLock<Image> = OnceLock::new();
    IMAGE.get_or_init(|| {
        require_root();
        for tool in ["mmdebstrap", "jq", "runc"] {
            require_tool(tool, "--version");
        }
        let started = Instant::now();
        let mut build = image_build_command();
        let out = run(build.stderr(Stdio::inherit()));
        let build_seconds = started.elapsed().as_secs_f64();
        let stdout = String::from_utf8(out.stdout).expect("utf-8");
        println!("deploy/image/build ({build_seconds:.0} s):\n{stdout}");
        let archive = PathBuf::from(stdout.lines().last().expect("the archive path").trim());
        assert!(archive.is_file(), "{} written", archive.display());

        // <target>/image/<archive>
        let target_dir = archive
            .parent()
            .and_then(Path::parent)
            .expect("the archive is in <target>/image")
            .to_owned();
        let scratch = target_dir.join("image-test");
        if scratch.exists() {
            fs::remove_dir_all(&scratch).expect("old scratch removed");
        }
        let layout = scratch.join("layout");
        fs::create_dir_all(&layout).expect("layout dir");
        run(Command::new("tar")
            .arg("-xf")
            .arg(&archive)
            .arg("-C")
            .arg(&layout));

        let index = read_json(&layout.join("index.json"));
        let manifests = index["manifests"].as_array().expect("manifests");
        assert_eq!(manifests.len(), 1, "one image in the index: {index}");
        let manifest = read_json(&blob_path(
            &layout,
            manifests[0]["digest"].as_str().expect("digest"),
        ));
        let config = read_json(&blob_path(
            &layout,
            manifest["config"]["digest"]
                .as_str()
                .expect("config digest"),
        ));

        let bundle = scratch.join("bundle");
        let rootfs = bundle.join("rootfs");
        fs::create_dir_all(&rootfs).expect("rootfs dir");
        let mut layers = Vec::new();
        for (n, layer) in manifest["layers"]
            .as_array()
            .expect("layers")
            .iter()
            .enumerate()
        {
            let tar = scratch.join(format!("layer{n}.tar"));
            let gz = blob_path(&layout, layer["digest"].as_str().expect("layer digest"));
            let file = fs::File::create(&tar).expect("layer file");
            run(Command::new("gzip").arg("-dc").arg(&gz).stdout(file));
            let list = run(Command::new("tar").arg("-tf").arg(&tar));
            let paths: Vec<String> = String::from_utf8(list.stdout)
                .expect("utf-8 paths")
                .lines()
                .map(|p| p.trim_start_matches("./").trim_end_matches('/').to_owned())
                .filter(|p| !p.is_empty())
                .collect();
            // Whiteouts would need deleting lower files; these layers only add.
            assert!(
                paths
                    .iter()
                    .all(|p| !p.rsplit('/').next().unwrap_or(p).starts_with(".wh.")),
                "layer {n} has whiteouts"
            );
            // As root, tar restores owners (/home/nonroot is 65532's) and modes.
            run(Command::new("tar")
                .args(["-xpf"])
                .arg(&tar)
                .arg("--numeric-owner")
                .arg("-C")
                .arg(&rootfs));
            layers.push((tar, paths));
        }
        Image {
            target_dir,
            scratch,
            layout,
            manifest,
            config,
            layers,
            bundle,
            rootfs,
            build_seconds,
        }
    })
}

#[test]
fn the_archive_is_an_oci_layout_of_the_dockerfiles_runtime_stage() {
    let image = image();
    let layout = &image.layout;
    assert_eq!(
        read_json(&layout.join("oci-layout")),
        json!({"imageLayoutVersion": "1.0.0"})
    );
    let index = read_json(&layout.join("index.json"));
    assert_eq!(index["schemaVersion"], 2);
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let entry = &index["manifests"][0];
    assert_eq!(
        entry["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert_eq!(
        entry["platform"],
        json!({"architecture": "amd64", "os": "linux"})
    );

    // The name ctr import gives it is the chart's default image.
    let values: serde_json::Value = serde_saphyr::from_str(
        &fs::read_to_string(repo_root().join("charts/cosmos-cmk-operator/values.yaml"))
            .expect("values.yaml"),
    )
    .expect("values.yaml is YAML");
    let chart: serde_json::Value = serde_saphyr::from_str(
        &fs::read_to_string(repo_root().join("charts/cosmos-cmk-operator/Chart.yaml"))
            .expect("Chart.yaml"),
    )
    .expect("Chart.yaml is YAML");
    let app_version = chart["appVersion"].as_str().expect("appVersion");
    assert_eq!(app_version, env!("CARGO_PKG_VERSION"));
    let annotations = &entry["annotations"];
    assert_eq!(
        annotations["org.opencontainers.image.ref.name"],
        app_version
    );
    assert_eq!(
        annotations["io.containerd.image.name"],
        format!(
            "{}:{app_version}",
            values["image"]["repository"].as_str().expect("repository")
        )
    );

    // Every blob is named by its sha256, and every descriptor is exact.
    let blobs: BTreeSet<String> = fs::read_dir(layout.join("blobs/sha256"))
        .expect("blobs")
        .map(|e| e.expect("entry").file_name().into_string().expect("name"))
        .collect();
    for hex in &blobs {
        assert_eq!(&sha256_hex(&layout.join("blobs/sha256").join(hex)), hex);
    }
    let manifest = &image.manifest;
    let mut descriptors = vec![entry.clone(), manifest["config"].clone()];
    descriptors.extend(manifest["layers"].as_array().expect("layers").clone());
    for d in &descriptors {
        let path = blob_path(layout, d["digest"].as_str().expect("digest"));
        assert_eq!(
            fs::metadata(&path).expect("blob").len(),
            d["size"].as_u64().expect("size"),
            "size of {d}"
        );
    }
    assert_eq!(blobs.len(), descriptors.len(), "no blob that nothing names");
    assert_eq!(manifest["schemaVersion"], 2);
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    for layer in manifest["layers"].as_array().expect("layers") {
        assert_eq!(
            layer["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
    }
    let diff_ids: Vec<String> = image
        .layers
        .iter()
        .map(|(tar, _)| format!("sha256:{}", sha256_hex(tar)))
        .collect();
    assert_eq!(image.config["rootfs"]["type"], "layers");
    assert_eq!(image.config["rootfs"]["diff_ids"], json!(diff_ids));
    assert_eq!(image.config["os"], "linux");
    assert_eq!(image.config["architecture"], "amd64");

    // The Dockerfile's runtime stage, reproduced.
    let stage = dockerfile_runtime_stage();
    assert_eq!(stage.from, "gcr.io/distroless/cc-debian12:nonroot");
    let config = &image.config["config"];
    assert_eq!(config["User"], stage.user);
    assert_eq!(config["Entrypoint"], stage.entrypoint);
    assert_eq!(config["Cmd"], stage.cmd);
    assert_eq!(config["WorkingDir"], "/home/nonroot");
    let (_, top) = image.layers.last().expect("a layer");
    let binary_rel = stage.binary_path.trim_start_matches('/');
    assert!(
        top.iter().all(|p| binary_rel.starts_with(p.as_str())),
        "the last layer holds the binary and its directories only: {top:?}"
    );
    assert!(top.iter().any(|p| p == binary_rel), "{top:?}");
    let binary = image.rootfs.join(binary_rel);
    let meta = fs::metadata(&binary).expect("the binary in the image");
    assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
    assert_eq!(
        sha256_hex(&binary),
        sha256_hex(&image.target_dir.join("release/cmk-operator")),
        "the host's release binary"
    );

    let compressed: u64 = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["size"].as_u64().expect("size"))
        .sum();
    println!(
        "compressed {compressed} bytes; build {:.0} s",
        image.build_seconds
    );
    assert!(
        compressed <= MAX_COMPRESSED_BYTES,
        "{compressed} bytes compressed, over {MAX_COMPRESSED_BYTES}"
    );
}

#[test]
fn the_base_has_the_distroless_nonroot_content() {
    let rootfs = &image().rootfs;
    let bundle = fs::read_to_string(rootfs.join("etc/ssl/certs/ca-certificates.crt"))
        .expect("the CA bundle at /etc/ssl/certs/ca-certificates.crt");
    let certs = bundle.matches("-----BEGIN CERTIFICATE-----").count();
    assert!(certs >= 100, "{certs} certificates in the CA bundle");
    assert_eq!(
        bundle.matches("-----END CERTIFICATE-----").count(),
        certs,
        "every certificate complete"
    );

    let passwd = fs::read_to_string(rootfs.join("etc/passwd")).expect("/etc/passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l == "nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin"),
        "{passwd}"
    );
    let group = fs::read_to_string(rootfs.join("etc/group")).expect("/etc/group");
    assert!(group.lines().any(|l| l == "nonroot:x:65532:"), "{group}");
    let home = fs::metadata(rootfs.join("home/nonroot")).expect("/home/nonroot");
    assert_eq!((home.uid(), home.gid()), (NONROOT, NONROOT));
    assert_eq!(home.permissions().mode() & 0o7777, 0o700);
    let tmp = fs::metadata(rootfs.join("tmp")).expect("/tmp");
    assert_eq!(tmp.permissions().mode() & 0o7777, 0o1777);

    // The libraries, time zones and network tables of the cc base.
    for path in [
        "lib/x86_64-linux-gnu/libc.so.6",
        "lib/x86_64-linux-gnu/libgcc_s.so.1",
        "usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        "usr/lib/x86_64-linux-gnu/libssl.so.3",
        "usr/share/zoneinfo/Europe/Berlin",
        "etc/services",
        "etc/os-release",
        "var/lib/dpkg/status.d/libc6",
    ] {
        assert!(rootfs.join(path).exists(), "/{path} in the base");
    }
    let os_release = fs::read_to_string(rootfs.join("usr/lib/os-release")).expect("os-release");
    assert!(
        os_release.contains("VERSION_CODENAME=bookworm"),
        "{os_release}"
    );

    // No shell, no package manager, nothing of the host that built it.
    for path in [
        "bin/sh",
        "bin/bash",
        "bin/dash",
        "usr/bin/sh",
        "usr/bin/apt",
        "usr/bin/dpkg",
        "usr/bin/mawk",
        "usr/bin/perl",
        "etc/apt",
        "etc/resolv.conf",
        "etc/hostname",
    ] {
        assert!(
            fs::symlink_metadata(rootfs.join(path)).is_err(),
            "/{path} is not in the image"
        );
    }
}

/// A runc bundle's config.json for `args` in the image: its env, working
/// directory and user; a read-only root; no capabilities, no new privileges;
/// new pid, ipc, uts, mount and network namespaces (a fresh network namespace
/// has only a loopback device, so nothing leaves the machine).
fn runtime_spec(image: &Image, args: &[&str]) -> Value {
    let mut argv: Vec<Value> = image.config["config"]["Entrypoint"]
        .as_array()
        .expect("entrypoint")
        .clone();
    argv.extend(args.iter().map(|a| json!(a)));
    runtime_spec_for(image, argv, &[])
}

/// `runtime_spec` for `argv` as given, with `binds` (host path, container
/// path) bind-mounted read-only.
fn runtime_spec_for(image: &Image, argv: Vec<Value>, binds: &[(&Path, &str)]) -> Value {
    let config = &image.config["config"];
    let (uid, gid) = config["User"]
        .as_str()
        .and_then(|u| u.split_once(':'))
        .expect("User uid:gid");
    let none: Vec<&str> = Vec::new();
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid.parse::<u32>().expect("uid"), "gid": gid.parse::<u32>().expect("gid")},
            "args": argv,
            "env": config["Env"],
            "cwd": config["WorkingDir"],
            "capabilities": {
                "bounding": none, "effective": none, "inheritable": none,
                "permitted": none, "ambient": none
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "cmk-image-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    });
    let mounts = spec["mounts"].as_array_mut().expect("mounts");
    for (host, dest) in binds {
        mounts.push(json!({"destination": dest, "type": "bind", "source": host,
            "options": ["bind", "ro", "nosuid", "nodev"]}));
    }
    spec
}

static CONTAINERS: AtomicU32 = AtomicU32::new(0);

/// runc's state for these tests, apart from any other runc user's.
fn runc() -> Command {
    let mut cmd = Command::new("runc");
    cmd.arg("--root").arg(image().scratch.join("runc-state"));
    cmd
}

fn container_id() -> String {
    format!(
        "cmk-image-test-{}-{}",
        std::process::id(),
        CONTAINERS.fetch_add(1, Ordering::SeqCst)
    )
}

/// Writes the bundle's config for `args` (one container at a time: the
/// tests of this binary share one bundle).
fn with_bundle<T>(args: &[&str], f: impl FnOnce(&Path) -> T) -> T {
    with_bundle_spec(runtime_spec(image(), args), f)
}

fn with_bundle_spec<T>(spec: Value, f: impl FnOnce(&Path) -> T) -> T {
    static BUNDLE: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _guard = BUNDLE.lock().unwrap_or_else(|e| e.into_inner());
    let image = image();
    fs::write(
        image.bundle.join("config.json"),
        serde_json::to_vec_pretty(&spec).expect("spec"),
    )
    .expect("config.json written");
    f(&image.bundle)
}

/// The simulator's own binary (`cmk-sim`, debug build, made here if
/// missing): the image carries none, so the process test borrows it.
fn simulator_binary(image: &Image) -> PathBuf {
    run(Command::new("cargo").args([
        "build", "--locked", "-q", "-p", "cmk-sim", "--bin", "cmk-sim",
    ]));
    let path = image.target_dir.join("debug/cmk-sim");
    assert!(
        path.exists(),
        "{} after cargo build -p cmk-sim",
        path.display()
    );
    path
}

/// Runs the image's entrypoint with `args` in the foreground to its end.
fn run_in_container(args: &[&str]) -> Output {
    with_bundle(args, |bundle| {
        let id = container_id();
        let out = runc()
            .args(["run", "--bundle"])
            .arg(bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .output()
            .expect("runc runs");
        let _ = runc().args(["delete", "--force", &id]).output();
        out
    })
}

/// Runs the image's entrypoint with `args`, which must succeed; its stdout.
fn stdout_in_container(args: &[&str]) -> String {
    let out = run_in_container(args);
    assert!(
        out.status.success(),
        "{args:?} in the container: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn the_image_runs_under_runc_as_nonroot_with_a_read_only_root() {
    let image = image();
    assert_eq!(
        stdout_in_container(&["--version"]),
        format!("cmk-operator {}\n", env!("CARGO_PKG_VERSION"))
    );
    let help = stdout_in_container(&["--help"]);
    for sub in ["run", "crd"] {
        assert!(help.contains(sub), "--help names {sub}: {help}");
    }
    // Built without the `simulator` feature: no simulator, none of its secrets.
    assert!(!help.contains("simulate"), "no simulate subcommand: {help}");
    let embedded = run_in_container(&["run", "--azure", "simulator"]);
    let stderr = String::from_utf8_lossy(&embedded.stderr);
    assert!(
        !embedded.status.success() && stderr.contains("no embedded simulator"),
        "run --azure simulator names the missing simulator: {stderr}"
    );
    let binary = fs::read(
        image.rootfs.join(
            image.config["config"]["Entrypoint"][0]
                .as_str()
                .expect("entrypoint")
                .trim_start_matches('/'),
        ),
    )
    .expect("the image's binary");
    let secret = cmk_operator::sim::SimConfig::default().operator_client_secret;
    assert!(
        !binary.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the image's binary carries the simulator's fixed secret"
    );
    assert_eq!(
        stdout_in_container(&["crd"]),
        cmk_operator::api::crds_yaml(),
        "the image prints the CRDs this source generates"
    );

    // The image's own command (`run`) without settings: it manages real Azure
    // (never a fake one by default), so it stops at once naming what it lacks.
    let default = run_in_container(
        &image.config["config"]["Cmd"]
            .as_array()
            .expect("Cmd")
            .iter()
            .map(|v| v.as_str().expect("string"))
            .collect::<Vec<_>>(),
    );
    assert!(!default.status.success(), "run without settings fails");
    let stderr = String::from_utf8_lossy(&default.stderr);
    assert!(
        stderr.contains("manages real Azure")
            && stderr.contains("AZURE_TENANT_ID")
            && !stderr.contains("simulator started"),
        "run says what it lacks, and never starts a fake Azure: {stderr}"
    );
}

/// The process as the kernel sees it: `/proc/<pid>/status` of the
/// container's first process while it runs: the simulator, bind-mounted
/// from the host (the image has no long-running command that needs no
/// Kubernetes), until SIGTERM. Its user, capabilities, namespaces and root are
/// the image's.
#[test]
fn the_running_process_has_uid_65532_no_capabilities_and_loopback_only() {
    let image = image();
    let sim = simulator_binary(image);
    let argv = vec![
        json!("/usr/local/bin/cmk-sim"),
        json!("--listen"),
        json!("0.0.0.0:8443"),
    ];
    let spec = runtime_spec_for(image, argv, &[(&sim, "/usr/local/bin/cmk-sim")]);
    with_bundle_spec(spec, |bundle| {
        let id = container_id();
        let log = fs::File::create(bundle.with_file_name("simulate.log")).expect("log");
        run(runc()
            .args(["run", "--detach", "--bundle"])
            .arg(bundle)
            .arg(&id)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log));
        // Up once it says so (its SIGTERM handler is in place by then; as pid 1
        // of its namespace it would ignore a SIGTERM without one).
        let log_path = bundle.with_file_name("simulate.log");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("listening on")
        {
            assert!(
                Instant::now() < deadline,
                "the simulator did not start in 30 s:\n{}",
                fs::read_to_string(&log_path).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let state = run(runc().args(["state", &id]));
        let state: Value = serde_json::from_slice(&state.stdout).expect("state JSON");
        let pid = state["pid"].as_u64().expect("pid");
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));

        let status = fs::read_to_string(proc_dir.join("status")).expect("status");
        let field = |name: &str| -> String {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("{name} in {status}"))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        };
        // The network namespace's devices, and the root mount's options.
        let net_dev = fs::read_to_string(proc_dir.join("net/dev")).expect("net/dev");
        let mountinfo = fs::read_to_string(proc_dir.join("mountinfo")).expect("mountinfo");
        // It stops on SIGTERM, as a Pod's container must.
        let _ = runc().args(["kill", &id, "TERM"]).output();
        let deadline = Instant::now() + Duration::from_secs(20);
        while proc_dir.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let stopped = !proc_dir.exists();
        let _ = runc().args(["delete", "--force", &id]).output();

        assert_eq!(field("Uid:"), "65532 65532 65532 65532");
        assert_eq!(field("Gid:"), "65532 65532 65532 65532");
        assert_eq!(field("Groups:"), "");
        for cap in ["CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:"] {
            assert_eq!(field(cap), "0000000000000000", "{cap}");
        }
        assert_eq!(field("NoNewPrivs:"), "1");
        let devices: Vec<&str> = net_dev
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(str::trim)
            .collect();
        assert_eq!(devices, ["lo"], "only a loopback device: {net_dev}");
        let root = mountinfo
            .lines()
            .find(|l| l.split_whitespace().nth(4) == Some("/"))
            .expect("the root mount");
        let options = root.split_whitespace().nth(5).expect("mount options");
        assert!(
            options.split(',').any(|o| o == "ro"),
            "root mounted read-only: {root}"
        );
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        assert!(stopped, "the simulator stopped on SIGTERM:\n{log}");
    });
}
