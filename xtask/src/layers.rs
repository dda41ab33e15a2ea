//! The layer check: workspace dependency edges against ARCHITECTURE.md, and the conventions every library crate follows.

use std::collections::BTreeSet;
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

/// Checks the dependency edges and the crate conventions, reporting every problem found, not only the first.
pub(crate) fn run(root: &Path) -> Result<()> {
    let architecture = root.join("ARCHITECTURE.md");
    let text = fs::read_to_string(&architecture)
        .with_context(|| format!("could not read {}", architecture.display()))?;
    let allowed =
        parse_allowed_edges(&text).with_context(|| format!("in {}", architecture.display()))?;
    let packages = workspace_packages(&util::metadata(root)?)?;

    let mut problems = Vec::new();
    for edge in edges(&packages) {
        if !allowed.contains(&edge) && !allowed.contains(&(edge.0.clone(), ANY.to_owned())) {
            problems.push(format!(
                "dependency edge `{} -> {}` is not listed under `{SECTION}` in ARCHITECTURE.md \
                 (dependencies must point down the layers of DESIGN.md §3)",
                edge.0, edge.1
            ));
        }
    }
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
