//! A release as users receive it, on a real node, from nothing but an OCI
//! registry: the CNCF distribution registry (tests/release/build) started
//! by this test on the host's loopback with TLS from a test CA, reached by
//! the node's containerd at `NODE_IP:port` through a reverse nsproxy (a
//! `hosts.toml` under the node's `certs.d` trusts the CA; no import step).
//!
//! What docs/releasing.md and .github/workflows/release.yml do, here: the
//! image `deploy/image/build` makes pushed with crane, signed with cosign
//! (a key pair made by the test, no transparency log) and its SBOM
//! (`deploy/image/sbom`) attached as a signed SPDX attestation; the chart
//! packaged with its default `image.repository` at the registry, pushed with
//! `helm push` and signed. Before the install the chart, the image and the
//! SBOM are verified against the public key, and a key that did not sign is
//! refused. Then README.md, followed as written (tests/packaging/readme.rs
//! reads its blocks; a README that changes shape fails naming the section):
//! its `kubectl create namespace`, its `helm install oci://…` with its
//! values.yaml (the user's ids and Azure world filled with the simulator's,
//! plus the short list of what differs from a real cluster); the node pulls
//! the signed digest; its first key and account applied and Ready; its
//! `helm upgrade --reuse-values` to a second pushed, signed version (chart
//! X+1, a new image tag and digest) rolls the Pods onto it; its Uninstall:
//! the resources deleted first, then `helm uninstall`, leaving only what it
//! says stays (the CRDs, `crds.keep`, and
//! the leader-election Lease). Needs what chart_on_node.rs needs, plus
//! openssl; fails with the tools' message otherwise.

use crate::chart_on_node::{
    Azure, HELM_NS, NODE_IP, RELEASE, SERIAL, answers_in_node, assert_helm_release_gone,
    built_image, clean_up_helm_release, client, delete_namespace, examples_ready, helm, kubeconfig,
    kubectl, leader, ready_pods, reset, reverse_proxy, rolled_out, run, scratch,
};
use crate::{chart_aggregate, common, readme};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams};
use serde_json::json;

const CHART: &str = "cosmos-cmk-operator";
/// The image's repository in the registry (as ghcr.io/<org>/cosmos-cmk-operator).
const IMAGE: &str = "cosmos-cmk-operator";
/// The namespace the README's first key and account live in (and its
/// tenancy values name), as the README writes it.
const README_NS: &str = "team-a";
/// The vault of the simulator's world (deploy/examples' access-policy vault).
const VAULT: &str = "cmk-demo-policies";
/// The password cosign encrypts the test's private keys with.
const KEY_PASSWORD: &str = "cmk-release-test";

/// tests/release/build: registry, crane and cosign, built once.
fn tools() -> &'static PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| common::script_output_path("tests/release/build"))
}

/// A registry tool trusting the test CA (and only it: Go reads SSL_CERT_FILE).
fn tool(name: &str, ca: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(tools().join(name));
    cmd.env("SSL_CERT_FILE", ca)
        .env("COSIGN_PASSWORD", KEY_PASSWORD)
        // cosign's caches and crane's config out of $HOME.
        .env("HOME", dir)
        .env("TUF_ROOT", dir.join("tuf"))
        .env("DOCKER_CONFIG", dir.join("docker"))
        .current_dir(dir);
    cmd
}

/// A free port on the host's loopback (the registry binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The registry: `distribution` serving TLS on 127.0.0.1:port (the host
/// pushes there), a reverse nsproxy at NODE_IP:port in the node's namespace,
/// and the node's containerd told to trust the test CA for that host.
struct Registry {
    server: Child,
    proxy: Child,
    port: u16,
    dir: PathBuf,
    hosts_dir: PathBuf,
}

impl Registry {
    async fn start(dir: &Path) -> Registry {
        let port = free_port();
        let openssl = |args: &[&str]| {
            run(
                &format!("openssl {args:?}"),
                Command::new("openssl").args(args).current_dir(dir),
            )
        };
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        openssl(
            &[
                &["req", "-x509"],
                &ec[..],
                &["-keyout", "ca.key", "-out", "ca.pem"],
            ]
            .concat()
            .into_iter()
            .chain(["-days", "2", "-subj", "/CN=cmk release test CA"])
            .collect::<Vec<_>>(),
        );
        openssl(
            &[
                &["req"],
                &ec[..],
                &["-keyout", "tls.key", "-out", "tls.csr"],
            ]
            .concat()
            .into_iter()
            .chain(["-subj", "/CN=cmk release test registry"])
            .collect::<Vec<_>>(),
        );
        std::fs::write(
            dir.join("tls.ext"),
            format!(
                "subjectAltName=IP:127.0.0.1,IP:{NODE_IP}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"
            ),
        )
        .expect("extensions written");
        openssl(&[
            "x509",
            "-req",
            "-in",
            "tls.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "tls.ext",
            "-out",
            "tls.pem",
        ]);
        let config = json!({
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": true}},
            "storage": {"filesystem": {"rootdirectory": dir.join("data")}},
            "http": {
                "addr": format!("127.0.0.1:{port}"),
                "tls": {"certificate": dir.join("tls.pem"), "key": dir.join("tls.key")},
            },
        });
        std::fs::write(
            dir.join("config.yml"),
            serde_saphyr::to_string(&config).expect("YAML"),
        )
        .expect("config written");
        // An empty Sigstore trusted root: verification is by key only, and
        // cosign does not go looking for the public one (unreachable here).
        std::fs::write(
            dir.join("trusted_root.json"),
            r#"{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}"#,
        )
        .expect("trusted root written");
        let log = std::fs::File::create(dir.join("registry.log")).expect("log file");
        let server = Command::new(tools().join("registry"))
            .arg("serve")
            .arg(dir.join("config.yml"))
            // Its OpenTelemetry exporters would only try a collector on loopback.
            .env("OTEL_SDK_DISABLED", "true")
            .env("OTEL_TRACES_EXPORTER", "none")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("registry starts");
        let proxy = reverse_proxy(port);
        // containerd reads certs.d/<host:port>/hosts.toml at every pull.
        let hosts_dir = common::repo_root()
            .join("target/cluster/containerd/certs.d")
            .join(format!("{NODE_IP}:{port}"));
        std::fs::create_dir_all(&hosts_dir).expect("certs.d dir");
        std::fs::write(
            hosts_dir.join("hosts.toml"),
            format!(
                "server = \"https://{NODE_IP}:{port}\"\n[host.\"https://{NODE_IP}:{port}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{}\"\n",
                dir.join("ca.pem").display()
            ),
        )
        .expect("hosts.toml written");
        let registry = Registry {
            server,
            proxy,
            port,
            dir: dir.to_owned(),
            hosts_dir,
        };
        // From inside the node's namespace, as containerd connects: TLS
        // verified against the test CA, the registry's API answering.
        answers_in_node(&registry.ca(), NODE_IP, port, "/v2/").await;
        registry
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// How the host (pushing, signing, `helm install`) names it.
    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// How the node names it: the image repository the chart defaults to.
    fn node_host(&self) -> String {
        format!("{NODE_IP}:{}", self.port)
    }

    fn tool(&self, name: &str) -> Command {
        tool(name, &self.ca(), &self.dir)
    }

    /// The digest a reference points at.
    fn digest(&self, reference: &str) -> String {
        let digest = run(
            "crane digest",
            self.tool("crane").args(["digest", reference]),
        );
        let digest = digest.trim().to_owned();
        assert!(digest.starts_with("sha256:"), "{reference}: {digest}");
        digest
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        for child in [&mut self.server, &mut self.proxy] {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.hosts_dir);
    }
}

/// "1.2.3" → "1.2.4".
fn next_patch(version: &str) -> String {
    let (head, patch) = version.rsplit_once('.').expect("a x.y.z version");
    let patch: u32 = patch.parse().expect("a numeric patch version");
    format!("{head}.{}", patch + 1)
}

/// A top-level `key: value` line of Chart.yaml; the value unquoted.
fn chart_field(chart_yaml: &str, key: &str) -> String {
    chart_yaml
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().trim_matches('"').to_owned())
        .unwrap_or_else(|| panic!("Chart.yaml has no {key}"))
}

/// One published version: what a tag of the release workflow pushes.
struct Published {
    chart_version: String,
    chart_digest: String,
    image_tag: String,
    image_digest: String,
}

/// The key pair cosign signs with, made by `cosign generate-key-pair` under
/// `prefix` (PREFIX.key, encrypted with KEY_PASSWORD, and PREFIX.pub).
fn key_pair(registry: &Registry, prefix: &str) -> (PathBuf, PathBuf) {
    run(
        "cosign generate-key-pair",
        registry
            .tool("cosign")
            .args(["generate-key-pair", "--output-key-prefix", prefix]),
    );
    (
        registry.dir.join(format!("{prefix}.key")),
        registry.dir.join(format!("{prefix}.pub")),
    )
}

/// `cosign sign` of `reference` (by digest) with the private key, no
/// transparency log (none is reachable; docs/releasing.md's workflow uses one).
fn sign(registry: &Registry, key: &Path, reference: &str) {
    run(
        &format!("cosign sign {reference}"),
        registry
            .tool("cosign")
            .args(["sign", "--yes", "--tlog-upload=false", "--key"])
            .arg(key)
            .arg(reference),
    );
}

/// Pushes the image under `image_tag` (the first from deploy/image/build's
/// layout, a later one as a rebuild with a new digest), signs it, attaches
/// the SBOM as a signed attestation, and packages, pushes and signs the
/// chart as `chart_version` defaulting to that image.
fn publish(
    registry: &Registry,
    key: &Path,
    sbom: &Path,
    chart_version: &str,
    image_tag: &str,
    previous_tag: Option<&str>,
) -> Published {
    let host = registry.host();
    let image_ref = format!("{host}/{IMAGE}:{image_tag}");
    let source = match previous_tag {
        None => {
            let layout = &built_image().layout;
            run(
                "crane push",
                registry
                    .tool("crane")
                    .arg("push")
                    .arg(layout)
                    .arg(&image_ref),
            );
            image_ref.clone()
        }
        Some(previous) => format!("{host}/{IMAGE}:{previous}"),
    };
    // Each published image carries its version as a label, so each has a
    // digest and image id of its own, as the next release's build would.
    // The image id must also differ from the one chart_on_node.rs imports
    // under the chart's default name: kubelet 1.37 records which registries
    // it pulled an image id from and would then try to pull the imported
    // one from ghcr.io instead of using it.
    run(
        "crane mutate",
        registry.tool("crane").args([
            "mutate",
            "--label",
            &format!("org.opencontainers.image.version={image_tag}"),
            "--tag",
            &image_ref,
            &source,
        ]),
    );
    let image_digest = registry.digest(&image_ref);
    let by_digest = format!("{host}/{IMAGE}@{image_digest}");
    sign(registry, key, &by_digest);
    run(
        "cosign attest",
        registry
            .tool("cosign")
            .args([
                "attest",
                "--yes",
                "--tlog-upload=false",
                "--type",
                "spdxjson",
            ])
            .arg("--predicate")
            .arg(sbom)
            .arg("--key")
            .arg(key)
            .arg(&by_digest),
    );

    // The chart as the workflow packages it: its version and appVersion
    // set from the tag, image.repository at the registry the node pulls from.
    let chart = common::helm::chart_copy(&format!("release-{chart_version}"));
    let chart_yaml = std::fs::read_to_string(chart.join("Chart.yaml")).expect("Chart.yaml");
    let chart_yaml: String = chart_yaml
        .lines()
        .map(|l| {
            if l.starts_with("version:") {
                format!("version: {chart_version}\n")
            } else if l.starts_with("appVersion:") {
                format!("appVersion: \"{image_tag}\"\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(chart.join("Chart.yaml"), chart_yaml).expect("Chart.yaml written");
    let values = std::fs::read_to_string(chart.join("values.yaml")).expect("values.yaml");
    let default_repository = "  repository: ghcr.io/cosmos-cmk/cosmos-cmk-operator\n";
    assert!(
        values.contains(default_repository),
        "values.yaml's image.repository is where the release workflow publishes"
    );
    let values = values.replacen(
        default_repository,
        &format!("  repository: {}/{IMAGE}\n", registry.node_host()),
        1,
    );
    std::fs::write(chart.join("values.yaml"), values).expect("values.yaml written");
    let packages = registry.dir.join("charts");
    helm(&[
        "package",
        chart.to_str().expect("utf-8"),
        "--destination",
        packages.to_str().expect("utf-8"),
    ]);
    let package = packages.join(format!("{CHART}-{chart_version}.tgz"));
    helm(&[
        "push",
        package.to_str().expect("utf-8"),
        &format!("oci://{host}/charts"),
        "--ca-file",
        registry.ca().to_str().expect("utf-8"),
    ]);
    let chart_digest = registry.digest(&format!("{host}/charts/{CHART}:{chart_version}"));
    sign(
        registry,
        key,
        &format!("{host}/charts/{CHART}@{chart_digest}"),
    );
    Published {
        chart_version: chart_version.to_owned(),
        chart_digest,
        image_tag: image_tag.to_owned(),
        image_digest,
    }
}

/// `cosign verify` of `reference` against `public`: Ok(the digests the
/// verified signatures cover) or Err(cosign's message).
fn verify(registry: &Registry, public: &Path, reference: &str) -> Result<Vec<String>, String> {
    let out = registry
        .tool("cosign")
        .args([
            "verify",
            "--insecure-ignore-tlog=true",
            "--output",
            "json",
            "--trusted-root",
            "trusted_root.json",
            "--key",
        ])
        .arg(public)
        .arg(reference)
        .output()
        .expect("cosign runs");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let payloads: Vec<serde_json::Value> =
        serde_json::from_slice(&out.stdout).expect("cosign verify prints JSON");
    Ok(payloads
        .iter()
        .map(|p| {
            p["critical"]["image"]["docker-manifest-digest"]
                .as_str()
                .expect("a signed digest")
                .to_owned()
        })
        .collect())
}

/// Verifies, as docs/releasing.md tells users to before installing: the
/// chart and the image signed by `public`, the SBOM attested for the image.
fn verify_release(registry: &Registry, public: &Path, release: &Published, sbom: &Path) {
    let host = registry.host();
    let chart_ref = format!("{host}/charts/{CHART}:{}", release.chart_version);
    let image_ref = format!("{host}/{IMAGE}:{}", release.image_tag);
    for (reference, digest) in [
        (&chart_ref, &release.chart_digest),
        (&image_ref, &release.image_digest),
    ] {
        let signed = verify(registry, public, reference)
            .unwrap_or_else(|e| panic!("cosign verify {reference}: {e}"));
        assert_eq!(signed, vec![digest.clone()], "{reference}");
    }
    let out = run(
        "cosign verify-attestation",
        registry
            .tool("cosign")
            .args([
                "verify-attestation",
                "--insecure-ignore-tlog=true",
                "--trusted-root",
                "trusted_root.json",
                "--type",
                "spdxjson",
                "--key",
            ])
            .arg(public)
            .arg(&image_ref),
    );
    let envelope: serde_json::Value =
        serde_json::from_str(out.lines().next().expect("one attestation")).expect("JSON");
    let statement = base64::engine::general_purpose::STANDARD
        .decode(envelope["payload"].as_str().expect("payload"))
        .expect("base64");
    let statement: serde_json::Value = serde_json::from_slice(&statement).expect("in-toto");
    assert_eq!(
        statement["subject"][0]["digest"]["sha256"].as_str(),
        release.image_digest.strip_prefix("sha256:"),
        "the SBOM is attested for the image's digest"
    );
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(sbom).expect("SBOM")).expect("SBOM JSON");
    assert_eq!(statement["predicateType"], "https://spdx.dev/Document");
    assert_eq!(
        statement["predicate"]["packages"], expected["packages"],
        "the attested SBOM is deploy/image/sbom's"
    );
}

/// The operator's Pods run the image of `release` from the registry: the
/// tag the chart defaults to, pulled by the node (no import), its digest the
/// signed one.
async fn assert_runs(
    client: &kube::Client,
    registry: &Registry,
    release: &Published,
    pods: &[Pod],
) {
    let repository = format!("{}/{IMAGE}", registry.node_host());
    for pod in pods {
        let name = pod.metadata.name.as_deref().expect("name");
        let image = pod.spec.as_ref().expect("spec").containers[0]
            .image
            .clone()
            .expect("image");
        assert_eq!(
            image,
            format!("{repository}:{}", release.image_tag),
            "{name}"
        );
        let status = &pod
            .status
            .as_ref()
            .expect("status")
            .container_statuses
            .as_ref()
            .expect("statuses")[0];
        // containerd names the first repository it knew the digest by.
        assert!(
            status
                .image_id
                .ends_with(&format!("@{}", release.image_digest)),
            "{name} runs the signed digest {}: {}",
            release.image_digest,
            status.image_id
        );
    }
    let events: Api<Event> = Api::namespaced(client.clone(), HELM_NS);
    let pulled = format!(
        "Successfully pulled image \"{repository}:{}\"",
        release.image_tag
    );
    common::eventually(
        Duration::from_secs(30),
        &format!("a Pulled event: {pulled}"),
        || async {
            let list = events
                .list(&ListParams::default().fields("reason=Pulled"))
                .await
                .ok()?;
            list.items
                .iter()
                .any(|e| e.message.as_deref().is_some_and(|m| m.starts_with(&pulled)))
                .then_some(())
        },
    )
    .await;
}

/// The README's placeholders for the user's Azure world, filled with the
/// simulator's (src/embedded.rs `example_world`). The resource group
/// `team-a` stays: the simulator creates accounts in any group.
fn fill(block: &str) -> String {
    block
        .replace("<sub>", cmk_operator::embedded::SUBSCRIPTION)
        .replace("<vault rg>", cmk_operator::embedded::RESOURCE_GROUP)
        .replace("<vault>", VAULT)
}

/// Panics naming the README's section if a `<placeholder>` is left.
fn assert_filled(yaml: &str, section: &str) {
    if let Some(at) = yaml.find('<') {
        let line = yaml[at..].lines().next().unwrap_or_default();
        panic!("README.md's `{section}` has a placeholder this test does not fill: {line}");
    }
}

/// The README's values.yaml with the user's ids: the Cosmos DB first
/// party's object id and the operator identity's client id (federated with
/// the chart's ServiceAccount, as workload identity is set up in Azure).
fn readme_values(readme: &str, azure: &Azure, fullname: &str) -> String {
    const SECTION: &str = "### Install with Helm";
    let block = readme::block(readme, SECTION, "yaml", "tenancy:");
    let mut values: serde_json::Value = serde_saphyr::from_str(&fill(&block))
        .unwrap_or_else(|e| panic!("README.md's `{SECTION}` values.yaml is not YAML: {e}"));
    for (path, id) in [
        ("/operator/firstPartyPrincipalId", azure.first_party()),
        (
            "/workloadIdentity/clientId",
            azure.federate_operator(HELM_NS, fullname),
        ),
    ] {
        let slot = values
            .pointer_mut(path)
            .unwrap_or_else(|| panic!("README.md's `{SECTION}` values.yaml has no {path}"));
        *slot = json!(id);
    }
    let yaml = serde_saphyr::to_string(&values).expect("YAML");
    assert_filled(&yaml, SECTION);
    yaml
}

/// What differs from a real cluster, and only that: Azure is the
/// simulator (its URL and CA), and this cluster has neither the workload
/// identity webhook (the chart projects the token itself) nor the webhook's
/// tenant id injection.
fn test_environment(azure: &Azure) -> serde_json::Value {
    json!({
        "simulator": {"url": azure.url, "caCert": azure.ca_pem()},
        "workloadIdentity": {"projectToken": true},
        "azure": {"tenantId": azure.tenant()},
    })
}

/// A README `helm …` command as this test runs it: the test's release name
/// and namespace, the local registry's chart, `version`, and the values
/// file written from the README's. Every other word is the README's.
fn as_here(command: &[String], chart_url: &str, version: &str, values: &Path) -> Vec<String> {
    let mut args: Vec<String> = Vec::new();
    let mut words = command.iter().skip(1).enumerate();
    while let Some((i, word)) = words.next() {
        let mut value = |replacement: &str| {
            words.next().expect("a flag's value");
            replacement.to_owned()
        };
        let replaced = match word.as_str() {
            _ if i == 1 => RELEASE.to_owned(),
            w if w.starts_with("oci://") => {
                assert!(
                    w.ends_with(&format!("/charts/{CHART}")),
                    "the README's chart: {w}"
                );
                chart_url.to_owned()
            }
            "--version" => {
                args.push(word.clone());
                value(version)
            }
            "-n" | "--namespace" => {
                args.push(word.clone());
                value(HELM_NS)
            }
            "-f" | "--values" => {
                args.push(word.clone());
                value(values.to_str().expect("utf-8"))
            }
            _ => word.clone(),
        };
        args.push(replaced);
    }
    args
}

/// The README's "Your first key and account": its YAML block applied with
/// its `kubectl apply`, both Ready, then its `kubectl wait` and `kubectl
/// get` as it shows them.
async fn apply_readme_resources(client: &kube::Client, readme: &str, dir: &Path) {
    const SECTION: &str = "### Your first key and account";
    let resources = fill(&readme::block(
        readme,
        SECTION,
        "yaml",
        "kind: CosmosAccountCMK",
    ));
    let without_comments: String = resources
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_filled(&without_comments, SECTION);
    let apply = readme::command(readme, SECTION, &["kubectl", "apply"]);
    let file = dir.join(readme::flag(&apply, &["-f"]));
    std::fs::write(&file, resources).expect("resources written");
    let mut args: Vec<&str> = apply[1..].iter().map(String::as_str).collect();
    let at = args.iter().position(|a| *a == "-f").expect("-f") + 1;
    args[at] = file.to_str().expect("utf-8");
    kubectl(&args);
    examples_ready(client, README_NS, 1, 1).await;
    let wait = readme::command(readme, SECTION, &["kubectl", "-n", README_NS, "wait"]);
    kubectl(&wait[1..].iter().map(String::as_str).collect::<Vec<_>>());
    let get = readme::command(readme, SECTION, &["kubectl", "-n", README_NS, "get"]);
    let shown = kubectl(&get[1..].iter().map(String::as_str).collect::<Vec<_>>());
    eprintln!("{}:\n{shown}", get.join(" "));
    // What the README says it shows: the same rows, in the same order, Ready.
    let rows = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|l| l.contains(".cosmoscmk.io/"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect()
    };
    let documented = readme::block(readme, SECTION, "", "cosmoscmk.io/");
    assert_eq!(
        rows(&shown),
        rows(&documented),
        "README.md's `{SECTION}` shows what `{}` prints",
        get.join(" ")
    );
    for name in rows(&documented) {
        let line = shown
            .lines()
            .find(|l| l.starts_with(name.as_str()))
            .unwrap_or_else(|| panic!("`{}` shows {name}: {shown}", get.join(" ")));
        assert!(
            line.split_whitespace().nth(1) == Some("Ready"),
            "the README shows {name} Ready: {line}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_release_installs_from_an_oci_registry_upgrades_and_uninstalls_on_a_real_node() {
    // The tools first (minutes on a fresh machine), while the other tests
    // on the node may run.
    tools();
    let _serial = SERIAL.lock().await;
    let started = Instant::now();
    let built = built_image();
    let sbom = PathBuf::from(
        run(
            "deploy/image/sbom",
            Command::new(common::repo_root().join("deploy/image/sbom"))
                .arg(&built.layout)
                .stderr(Stdio::inherit()),
        )
        .lines()
        .last()
        .expect("the SBOM's path")
        .trim(),
    );
    kubeconfig();
    let client = client().await;
    reset(&client).await;
    let dir = scratch("release");
    let registry = Registry::start(&dir).await;
    eprintln!(
        "registry at {} (the node: {}) after {:?}",
        registry.host(),
        registry.node_host(),
        started.elapsed()
    );

    // Two releases, as two tags of the workflow would publish them.
    let (key, public) = key_pair(&registry, "release");
    let chart_yaml =
        std::fs::read_to_string(common::helm::chart_dir().join("Chart.yaml")).expect("Chart.yaml");
    let first_chart = chart_field(&chart_yaml, "version");
    let first_app = chart_field(&chart_yaml, "appVersion");
    assert_eq!(
        first_app, built.tag,
        "the image deploy/image/build tags is the chart's appVersion"
    );
    let first = publish(&registry, &key, &sbom, &first_chart, &first_app, None);
    let second = publish(
        &registry,
        &key,
        &sbom,
        &next_patch(&first_chart),
        &next_patch(&first_app),
        Some(&first_app),
    );
    assert_ne!(first.image_digest, second.image_digest);
    eprintln!("published and signed after {:?}", started.elapsed());

    // Verified before anything is installed; a key that did not sign is refused.
    verify_release(&registry, &public, &first, &sbom);
    let (_, stranger) = key_pair(&registry, "stranger");
    for reference in [
        format!("{}/{IMAGE}:{}", registry.host(), first.image_tag),
        format!("{}/charts/{CHART}:{}", registry.host(), first.chart_version),
    ] {
        let refused = verify(&registry, &stranger, &reference)
            .expect_err("a signature by another key is refused");
        assert!(
            refused.contains("no matching signatures"),
            "{reference}: {refused}"
        );
    }

    // The README, followed: its values.yaml, its install command, then its
    // first key and account applied as it shows them, in its namespace.
    let readme = readme::text();
    let azure = Azure::start().await;
    delete_namespace(&client, README_NS).await;
    let fullname = format!("{RELEASE}-{CHART}");
    let selector = format!("app.kubernetes.io/name={CHART},app.kubernetes.io/instance={RELEASE}");
    let values_file = dir.join("values.yaml");
    std::fs::write(&values_file, readme_values(&readme, &azure, &fullname))
        .expect("values written");
    let overrides_file = dir.join("test-environment.yaml");
    std::fs::write(
        &overrides_file,
        serde_saphyr::to_string(&test_environment(&azure)).expect("YAML"),
    )
    .expect("overrides written");
    let chart_url = format!("oci://{}/charts/{CHART}", registry.host());
    let ca = registry.ca();
    let ca = ca.to_str().expect("utf-8");
    // The namespaces the tenancy values name exist first (the chart grants
    // the operator a Role in each).
    let create = readme::command(
        &readme,
        "### Install with Helm",
        &["kubectl", "create", "namespace"],
    );
    assert_eq!(create[3..], [README_NS], "the README's namespace");
    kubectl(&create[1..].iter().map(String::as_str).collect::<Vec<_>>());
    let install = readme::command(&readme, "### Install with Helm", &["helm", "install"]);
    assert_eq!(
        readme::flag(&install, &["--version"]),
        first_chart,
        "the README installs the chart's version"
    );
    let mut args = as_here(&install, &chart_url, &first.chart_version, &values_file);
    args.extend(["--ca-file".into(), ca.into(), "-f".into()]);
    args.push(overrides_file.to_str().expect("utf-8").into());
    let out = helm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    eprintln!("helm {args:?}:\n{out}");
    rolled_out(&client, HELM_NS, &fullname, 2).await;
    let pods = ready_pods(&client, HELM_NS, &selector, 2).await;
    assert_runs(&client, &registry, &first, &pods).await;
    leader(&client, HELM_NS, &fullname, &pods).await;
    apply_readme_resources(&client, &readme, &dir).await;
    eprintln!(
        "installed, the README's key and account Ready after {:?}",
        started.elapsed()
    );
    // The chart's ClusterRoles aggregated into `edit` and `view` by this
    // cluster's kube-controller-manager, and what that grants in team-a.
    chart_aggregate::aggregated_by_the_controller(&client, kubeconfig(), README_NS, "orders").await;

    // helm upgrade to the second version, verified first.
    verify_release(&registry, &public, &second, &sbom);
    let upgrade = readme::command(&readme, "## Upgrade", &["helm", "upgrade"]);
    assert!(
        upgrade.iter().any(|w| w == "--reuse-values"),
        "the README upgrades with --reuse-values: {upgrade:?}"
    );
    let mut args = as_here(&upgrade, &chart_url, &second.chart_version, &values_file);
    args.extend(["--ca-file".into(), ca.into()]);
    helm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    rolled_out(&client, HELM_NS, &fullname, 2).await;
    let pods = common::eventually(
        Duration::from_secs(180),
        "the Pods on the second release's image",
        || async {
            let pods = ready_pods(&client, HELM_NS, &selector, 2).await;
            pods.iter()
                .all(|p| {
                    p.spec
                        .as_ref()
                        .and_then(|s| s.containers[0].image.as_deref())
                        == Some(&format!(
                            "{}/{IMAGE}:{}",
                            registry.node_host(),
                            second.image_tag
                        ))
                })
                .then_some(pods)
        },
    )
    .await;
    assert_runs(&client, &registry, &second, &pods).await;
    leader(&client, HELM_NS, &fullname, &pods).await;
    let releases = helm(&["list", "--namespace", HELM_NS, "--output", "json"]);
    let releases: serde_json::Value = serde_json::from_str(&releases).expect("helm list JSON");
    assert_eq!(
        releases[0]["chart"],
        format!("{CHART}-{}", second.chart_version)
    );
    assert_eq!(releases[0]["app_version"], second.image_tag);

    // The upgraded operator still serves the README's resources.
    examples_ready(&client, README_NS, 1, 1).await;

    // Uninstall as the README says: the resources first (the upgraded
    // operator releases them: their finalizers are its; `kubectl delete`
    // waits for that), then the release. What stays is what it says stays:
    // the CRDs (`crds.keep`) and the leader-election Lease.
    let delete = readme::command(&readme, "## Uninstall", &["kubectl", "delete"]);
    kubectl(&delete[1..].iter().map(String::as_str).collect::<Vec<_>>());
    for kind in ["cosmosaccountcmks", "keyvaultbindings"] {
        let left = kubectl(&["get", kind, "-A", "-o", "name"]);
        assert!(left.trim().is_empty(), "{kind} left: {left}");
    }
    let uninstall = readme::command(&readme, "## Uninstall", &["helm", "uninstall"]);
    let args = as_here(&uninstall, &chart_url, "", &values_file);
    helm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_helm_release_gone(&client, &fullname).await;
    eprintln!("release test done in {:?}", started.elapsed());

    delete_namespace(&client, README_NS).await;
    clean_up_helm_release(&client).await;
    drop(azure);
    drop(registry);
}
