//! The layer check: workspace dependency edges against ARCHITECTURE.md, the server/client boundary, and the
//! conventions every library crate follows.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util;

/// The heading of the ARCHITECTURE.md section that lists the allowed edges.
const SECTION: &str = "## Allowed dependency edges";
/// The target of an edge that lets a package depend on every workspace member.
const ANY: &str = "*";
/// The crate-doc attribute every library crate's root carries, so its README is its crate doc and its example a doctest.
const README_DOC: &str = "#![doc = include_str!(\"../README.md\")]";
/// The packages of the server side: they hold no private key, exchange secret or data key.
const SERVER_SIDE: &[&str] = &["tessera-server"];
/// What the server side must never link, directly or through another member (normal and build dependencies):
/// the client and the SDK hold owners' keys, and the server must not even be able to name them.
const CLIENT_SIDE: &[&str] = &["tessera-client", "tessera-sdk"];
/// The source directory, relative to the workspace root, that must not name a [`KEY_HOLDING_TYPES`] entry.
const SERVER_SOURCES: &str = "crates/tessera-server/src";
/// Types that hold a private key, an exchange secret, a data key or plaintext, which the server must never hold
/// (ARCHITECTURE.md, invariants). The server depends on `tessera-keys`, `tessera-sharing` and
/// `tessera-primitives` for their public types (bundles to verify, exchange data, rules, hashes), so the crate
/// graph cannot keep these out; this list does, by name, in every file under [`SERVER_SOURCES`] (comments aside).
/// `AccessControlKey` is deliberately absent: clients present access-control keys to the server, which hashes them
/// into delegation keys at once (DESIGN.md §4).
const KEY_HOLDING_TYPES: &[&str] = &[
    // tessera-keys: an owner's RSA key and everything derived from it; opened exchange secrets; the key bag
    // (sealed under the self key); the capability to unwrap with a private key.
    "OwnerKeys",
    "ExchangeSecret",
    "KeyBag",
    "UnwrapKey",
    // tessera-primitives: private and secret key material, and the stream sealer and opener that hold a data key.
    "RsaPrivateKey",
    "PrivateKey",
    "SigningKey",
    "AeadKey",
    "Prk",
    "Secret32",
    "SecretBytes",
    "StreamSealer",
    "StreamOpener",
    "StreamWriter",
    "StreamReader",
    // tessera-sharing: opened exchange secrets by delegation key, an entity's opened keys, and decrypted content.
    "AccessIndex",
    "DelegationLookup",
    "EntityKeys",
    "DecryptedEntity",
];

/// Checks the dependency edges and the crate conventions, reporting every problem found, not only the first.
pub(crate) fn run(root: &Path) -> Result<()> {
    let architecture = root.join("ARCHITECTURE.md");
    let text = fs::read_to_string(&architecture)
        .with_context(|| format!("could not read {}", architecture.display()))?;
    let allowed =
        parse_allowed_edges(&text).with_context(|| format!("in {}", architecture.display()))?;
    let packages = workspace_packages(&util::metadata(root)?)?;
    let sources = rust_sources(&root.join(SERVER_SOURCES))?;

    let mut problems = check(&allowed, &packages, &sources);
    for package in &packages {
        problems.extend(convention_problems(root, package)?);
    }

    if problems.is_empty() {
        println!(
            "{} workspace packages: every dependency edge is allowed and every crate follows the conventions",
            packages.len()
        );
        return Ok(());
    }
    for problem in &problems {
        eprintln!("error: {problem}");
    }
    bail!("layer check found {} problem(s)", problems.len())
}

/// The checks that need no file system: every edge is allowed, the server side links no client side, and no server
/// source names a key-holding type. `sources` are the server's files as `(path, text)`.
fn check(
    allowed: &BTreeSet<(String, String)>,
    packages: &[Package],
    sources: &[(String, String)],
) -> Vec<String> {
    let mut problems = Vec::new();
    for edge in edges(packages) {
        if !allowed.contains(&edge) && !allowed.contains(&(edge.0.clone(), ANY.to_owned())) {
            problems.push(format!(
                "dependency edge `{} -> {}` is not listed under `{SECTION}` in ARCHITECTURE.md \
                 (dependencies must point down the layers of DESIGN.md §3)",
                edge.0, edge.1
            ));
        }
    }
    problems.extend(boundary_problems(packages));
    problems.extend(key_holding_problems(sources));
    problems
}

/// Every path from a server-side package to a client-side one through normal or build dependencies.
fn boundary_problems(packages: &[Package]) -> Vec<String> {
    let deps: BTreeMap<&str, &BTreeSet<String>> = packages
        .iter()
        .map(|package| (package.name.as_str(), &package.member_deps))
        .collect();
    let mut problems = Vec::new();
    for &server in SERVER_SIDE {
        // Breadth first, remembering how each member was reached, to name the whole chain.
        let mut reached_from: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([server]);
        while let Some(current) = queue.pop_front() {
            for dep in deps.get(current).into_iter().flat_map(|deps| deps.iter()) {
                if dep != server && !reached_from.contains_key(dep.as_str()) {
                    reached_from.insert(dep, current);
                    queue.push_back(dep);
                }
            }
        }
        for &client in CLIENT_SIDE {
            if !reached_from.contains_key(client) {
                continue;
            }
            let mut chain = vec![client];
            let mut at = client;
            while let Some(&previous) = reached_from.get(at) {
                chain.push(previous);
                at = previous;
                if previous == server {
                    break;
                }
            }
            chain.reverse();
            problems.push(format!(
                "`{server}` depends on `{client}` ({}): the server side must never link the client side",
                chain.join(" -> ")
            ));
        }
    }
    problems
}

/// Every line of the server's sources (comments aside) that names a key-holding type.
fn key_holding_problems(sources: &[(String, String)]) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, text) in sources {
        for (number, line) in text.lines().enumerate() {
            let code = line.split_once("//").map_or(line, |(code, _)| code);
            let named: BTreeSet<&str> = code
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .filter(|word| KEY_HOLDING_TYPES.contains(word))
                .collect();
            for name in named {
                problems.push(format!(
                    "{path}:{}: names `{name}`, a key-holding type the server must never hold",
                    number + 1
                ));
            }
        }
    }
    problems
}

/// Every `.rs` file under `dir` (none if it does not exist), as `(path, text)`, in a stable order.
fn rust_sources(dir: &Path) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    if !dir.is_dir() {
        return Ok(files);
    }
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in fs::read_dir(&current)
            .with_context(|| format!("could not list {}", current.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                let text = fs::read_to_string(&path)
                    .with_context(|| format!("could not read {}", path.display()))?;
                files.push((path.display().to_string(), text));
            }
        }
    }
    files.sort();
    Ok(files)
}

/// A workspace member as the layer check sees it.
struct Package {
    name: String,
    manifest: PathBuf,
    /// The library target's root file, if the package has a library.
    lib_root: Option<PathBuf>,
    /// Names of the workspace members it depends on through normal or build dependencies.
    member_deps: BTreeSet<String>,
}

/// Reads the `- from -> to` lines of the allowed-edges section, up to the next heading of level one or two
/// or the section's `<!-- END` marker.
fn parse_allowed_edges(text: &str) -> Result<BTreeSet<(String, String)>> {
    let mut lines = text.lines().skip_while(|line| line.trim_end() != SECTION);
    if lines.next().is_none() {
        bail!("no `{SECTION}` section");
    }
    let mut edges = BTreeSet::new();
    let section_ended = |line: &&str| {
        line.starts_with("# ") || line.starts_with("## ") || line.starts_with("<!-- END")
    };
    for line in lines.take_while(|line| !section_ended(line)) {
        let Some(item) = line.strip_prefix("- ") else {
            continue;
        };
        let Some((from, to)) = item.split_once("->") else {
            bail!("malformed line `{line}` under `{SECTION}`: expected `- from -> to`");
        };
        let (from, to) = (clean(from), clean(to));
        if from.is_empty() || to.is_empty() || to.contains(',') {
            bail!(
                "malformed line `{line}` under `{SECTION}`: expected one `- from -> to` per line"
            );
        }
        edges.insert((from.to_owned(), to.to_owned()));
    }
    if edges.is_empty() {
        bail!("the `{SECTION}` section lists no edges");
    }
    Ok(edges)
}

/// Trims spaces and Markdown code ticks around a crate name.
fn clean(name: &str) -> &str {
    name.trim().trim_matches('`').trim()
}

fn workspace_packages(metadata: &Value) -> Result<Vec<Package>> {
    let packages = metadata
        .get("packages")
        .and_then(Value::as_array)
        .context("`cargo metadata` gave no packages")?;
    let names: BTreeSet<&str> = packages
        .iter()
        .filter_map(|package| package.get("name").and_then(Value::as_str))
        .collect();
    packages
        .iter()
        .map(|package| parse_package(package, &names))
        .collect()
}

fn parse_package(package: &Value, members: &BTreeSet<&str>) -> Result<Package> {
    let name = str_field(package, "name")?.to_owned();
    let manifest = PathBuf::from(str_field(package, "manifest_path")?);
    let lib_root = package
        .get("targets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|target| has_kind(target, "lib"))
        .and_then(|target| target.get("src_path").and_then(Value::as_str))
        .map(PathBuf::from);
    let member_deps = package
        .get("dependencies")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|dep| dep.get("kind").and_then(Value::as_str) != Some("dev"))
        .filter(|dep| dep.get("path").is_some())
        .filter_map(|dep| dep.get("name").and_then(Value::as_str))
        .filter(|dep| members.contains(dep))
        .map(str::to_owned)
        .collect();
    Ok(Package {
        name,
        manifest,
        lib_root,
        member_deps,
    })
}

fn str_field<'a>(value: &'a Value, field: &str) -> Result<&'a str> {
    value
        .get(field)
        .and_then(Value::as_str)
        .with_context(|| format!("`cargo metadata` gave a package without `{field}`"))
}

fn has_kind(target: &Value, kind: &str) -> bool {
    target
        .get("kind")
        .and_then(Value::as_array)
        .is_some_and(|kinds| kinds.iter().any(|k| k.as_str() == Some(kind)))
}

fn edges(packages: &[Package]) -> Vec<(String, String)> {
    packages
        .iter()
        .flat_map(|package| {
            package
                .member_deps
                .iter()
                .map(|dep| (package.name.clone(), dep.clone()))
        })
        .collect()
}

/// Every member inherits the workspace lints; every library crate under `crates/` has a README that is its crate doc.
fn convention_problems(root: &Path, package: &Package) -> Result<Vec<String>> {
    let mut problems = Vec::new();
    let manifest = fs::read_to_string(&package.manifest)
        .with_context(|| format!("could not read {}", package.manifest.display()))?;
    if !inherits_workspace_lints(&manifest) {
        problems.push(format!(
            "{}: {} lacks `[lints] workspace = true`",
            package.name,
            package.manifest.display()
        ));
    }
    let Some(dir) = package.manifest.parent() else {
        return Ok(problems);
    };
    let Some(lib_root) = &package.lib_root else {
        return Ok(problems);
    };
    if !dir.starts_with(root.join("crates")) {
        return Ok(problems);
    }
    if !dir.join("README.md").is_file() {
        problems.push(format!("{}: library crate has no README.md", package.name));
    }
    let lib = fs::read_to_string(lib_root)
        .with_context(|| format!("could not read {}", lib_root.display()))?;
    if !lib.lines().any(|line| line.trim() == README_DOC) {
        problems.push(format!(
            "{}: {} lacks `{README_DOC}`",
            package.name,
            lib_root.display()
        ));
    }
    Ok(problems)
}

/// Whether the manifest has `[lints]` with `workspace = true`, or `lints.workspace = true` / `lints = { workspace = true }`.
fn inherits_workspace_lints(manifest: &str) -> bool {
    let mut in_lints = false;
    for line in manifest
        .lines()
        .map(|line| without_spaces(strip_comment(line)))
    {
        if line.starts_with('[') {
            in_lints = line == "[lints]";
        } else if (in_lints && line == "workspace=true")
            || line == "lints.workspace=true"
            || line == "lints={workspace=true}"
        {
            return true;
        }
    }
    false
}

fn strip_comment(line: &str) -> &str {
    line.split_once('#').map_or(line, |(code, _)| code)
}

fn without_spaces(line: &str) -> String {
    line.chars().filter(|c| !c.is_whitespace()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_section_and_stops_at_the_next_heading() -> Result<()> {
        let text = "# Title\n\n## Allowed dependency edges\n\nProse, `- not an edge` inline.\n\n\
                    - xtask -> *\n- `tessera-keys` -> `tessera-primitives`\n<!-- END edges -->\n- c -> d\n\n## Next\n\n- a -> b\n";
        let edges = parse_allowed_edges(text)?;
        let expected: BTreeSet<(String, String)> =
            [("xtask", "*"), ("tessera-keys", "tessera-primitives")]
                .into_iter()
                .map(|(a, b)| (a.to_owned(), b.to_owned()))
                .collect();
        assert_eq!(edges, expected);
        Ok(())
    }

    #[test]
    fn rejects_a_missing_section_and_malformed_lines() {
        assert!(parse_allowed_edges("# Title\n").is_err());
        assert!(parse_allowed_edges("## Allowed dependency edges\n- a to b\n").is_err());
        assert!(parse_allowed_edges("## Allowed dependency edges\n- a -> b, c\n").is_err());
        assert!(parse_allowed_edges("## Allowed dependency edges\nnothing\n").is_err());
    }

    #[test]
    fn collects_normal_and_build_path_deps_on_members_only() -> Result<()> {
        let metadata = serde_json::json!({ "packages": [
            { "name": "tessera-keys", "manifest_path": "/w/crates/tessera-keys/Cargo.toml", "targets": [],
              "dependencies": [
                { "name": "tessera-primitives", "kind": null, "path": "/w/crates/tessera-primitives" },
                { "name": "tessera-benches", "kind": "dev", "path": "/w/benches" },
                { "name": "ring", "kind": null },
              ] },
            { "name": "tessera-primitives", "manifest_path": "/w/crates/tessera-primitives/Cargo.toml",
              "targets": [ { "kind": ["lib"], "src_path": "/w/crates/tessera-primitives/src/lib.rs" } ],
              "dependencies": [ { "name": "tessera-keys", "kind": "build", "path": "/w/crates/tessera-keys" } ] },
            { "name": "tessera-benches", "manifest_path": "/w/benches/Cargo.toml", "targets": [], "dependencies": [] },
        ] });
        let packages = workspace_packages(&metadata)?;
        let edges = edges(&packages);
        let expected = [
            ("tessera-keys", "tessera-primitives"),
            ("tessera-primitives", "tessera-keys"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()));
        assert_eq!(edges, expected);
        Ok(())
    }

    fn package(name: &str, deps: &[&str]) -> Package {
        Package {
            name: name.to_owned(),
            manifest: PathBuf::new(),
            lib_root: None,
            member_deps: deps.iter().map(|dep| (*dep).to_owned()).collect(),
        }
    }

    /// Allowed `(from, to)` edges.
    type Edges = BTreeSet<(String, String)>;

    /// The layers as ARCHITECTURE.md lists them, and packages that follow them.
    fn layered() -> Result<(Edges, Vec<Package>)> {
        let text =
            fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../ARCHITECTURE.md"))?;
        let allowed = parse_allowed_edges(&text)?;
        let packages = vec![
            package("tessera-keys", &["tessera-primitives"]),
            package("tessera-wire", &["tessera-keys"]),
            package("tessera-store", &["tessera-keys"]),
            package("tessera-client", &["tessera-wire", "tessera-keys"]),
            package(
                "tessera-server",
                &["tessera-wire", "tessera-store", "tessera-keys"],
            ),
            package("tessera-sdk", &["tessera-client", "tessera-wire"]),
            package("tessera-cli", &["tessera-sdk", "tessera-server"]),
        ];
        Ok((allowed, packages))
    }

    #[test]
    fn the_layers_as_listed_pass() -> Result<()> {
        let (allowed, packages) = layered()?;
        let sources = [(
            "routes.rs".to_owned(),
            "use tessera_keys::{AccessControlKey, KeyBagEntry, KeyBundle};\n\
             // An `OwnerKeys` never reaches the server: comments may say so.\n"
                .to_owned(),
        )];
        assert_eq!(check(&allowed, &packages, &sources), Vec::<String>::new());
        Ok(())
    }

    #[test]
    fn a_server_to_client_edge_fails() -> Result<()> {
        let (mut allowed, mut packages) = layered()?;
        // Even if someone lists the edge, the boundary rule still refuses it.
        allowed.insert(("tessera-server".to_owned(), "tessera-client".to_owned()));
        for package in &mut packages {
            if package.name == "tessera-server" {
                package.member_deps.insert("tessera-client".to_owned());
            }
        }
        let problems = check(&allowed, &packages, &[]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].contains("(tessera-server -> tessera-client)"),
            "{problems:?}"
        );
        Ok(())
    }

    #[test]
    fn a_transitive_server_to_sdk_path_fails() -> Result<()> {
        let (mut allowed, mut packages) = layered()?;
        // A member the server may use, which itself (wrongly, but allowed here) uses the SDK.
        allowed.insert(("tessera-server".to_owned(), "tessera-audit".to_owned()));
        allowed.insert(("tessera-audit".to_owned(), "tessera-sdk".to_owned()));
        packages.push(package("tessera-audit", &["tessera-sdk"]));
        for package in &mut packages {
            if package.name == "tessera-server" {
                package.member_deps.insert("tessera-audit".to_owned());
            }
        }
        let problems = check(&allowed, &packages, &[]);
        let expected = [
            "`tessera-server` depends on `tessera-client` (tessera-server -> tessera-audit -> tessera-sdk -> \
             tessera-client): the server side must never link the client side",
            "`tessera-server` depends on `tessera-sdk` (tessera-server -> tessera-audit -> tessera-sdk): \
             the server side must never link the client side",
        ];
        assert_eq!(problems, expected);
        Ok(())
    }

    #[test]
    fn a_key_holding_type_in_server_sources_fails() -> Result<()> {
        let (allowed, packages) = layered()?;
        let sources = [
            (
                "src/auth.rs".to_owned(),
                "use tessera_keys::{KeyBagEntry, OwnerKeys};\nfn f(k: &tessera_keys::ExchangeSecret) {}\n".to_owned(),
            ),
            (
                "src/http.rs".to_owned(),
                "let key = RsaPrivateKey::from_pkcs8_pem(pem); // and RsaPrivateKey again\n".to_owned(),
            ),
        ];
        let problems = check(&allowed, &packages, &sources);
        let expected = [
            "src/auth.rs:1: names `OwnerKeys`, a key-holding type the server must never hold",
            "src/auth.rs:2: names `ExchangeSecret`, a key-holding type the server must never hold",
            "src/http.rs:1: names `RsaPrivateKey`, a key-holding type the server must never hold",
        ];
        assert_eq!(problems, expected);
        Ok(())
    }

    #[test]
    fn recognises_workspace_lints() {
        assert!(inherits_workspace_lints(
            "[package]\nname = \"a\"\n\n[lints]\nworkspace = true\n"
        ));
        assert!(inherits_workspace_lints(
            "lints.workspace = true # inherit\n"
        ));
        assert!(!inherits_workspace_lints(
            "[package]\nworkspace = true\n[lints]\n"
        ));
        assert!(!inherits_workspace_lints("[lints]\n# workspace = true\n"));
    }
}
