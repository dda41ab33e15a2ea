//! `cargo xtask bench`: runs the criterion benchmarks and summarises this run's results as a Markdown table.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::util::{self, cargo};

/// Criterion arguments that `--quick` stands for: enough for a rough figure in a fraction of the default time.
const QUICK: [&str; 4] = ["--warm-up-time", "1", "--measurement-time", "2"];
/// A benchmark whose function id is one of these, or one of these followed by `-` and an operation, is a reference
/// of its group: raw `ring` (`ring`, `ring-seal`), or the `age` crate in the bulk benchmark (`age-encrypt`).
const REFERENCE_PREFIXES: [&str; 2] = ["ring", "age"];

/// Runs `cargo bench -p tessera-benches --benches -- <args>` (every benchmark file), prints the summary and writes it to
/// `target/bench-summary.md`.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut criterion_args = Vec::new();
    for arg in args {
        if arg == "--quick" {
            criterion_args.extend(QUICK.map(str::to_owned));
        } else {
            criterion_args.push(arg.clone());
        }
    }
    let target = util::target_dir(root)?;
    // The same folder criterion picks: $CRITERION_HOME, else <target dir>/criterion.
    let criterion_home =
        std::env::var_os("CRITERION_HOME").map_or_else(|| target.join("criterion"), PathBuf::from);
    let started = whole_seconds(SystemTime::now())?;

    util::header("benchmarks");
    util::run(bench_command(root).args(&criterion_args))?;
    // Others may run benchmarks in the same target folder at the same time: keep only the results of the
    // benchmarks this run selected (criterion lists them without running them), written since it started.
    let selected = parse_list(&util::output(
        bench_command(root).arg("--list").args(&criterion_args),
    )?);

    let results: Vec<Measurement> = collect(&criterion_home, started)?
        .into_iter()
        .filter(|measurement| selected.contains(&measurement.full_id))
        .collect();
    if results.is_empty() {
        bail!(
            "criterion wrote no results under {} during this run (did a filter match no benchmark?)",
            criterion_home.display()
        );
    }
    let table = render(&results);
    util::header("summary");
    println!("{table}");
    let summary = target.join("bench-summary.md");
    fs::write(&summary, &table)
        .with_context(|| format!("could not write {}", summary.display()))?;
    println!("written to {}", summary.display());
    Ok(())
}

fn bench_command(root: &Path) -> std::process::Command {
    let mut command = cargo(root);
    command.args(["bench", "-p", "tessera-benches", "--benches", "--"]);
    command
}

/// The benchmark ids in criterion's `--list` output (`<id>: benchmark` lines).
fn parse_list(output: &str) -> BTreeSet<String> {
    output
        .lines()
        .filter_map(|line| line.strip_suffix(": benchmark"))
        .map(str::to_owned)
        .collect()
}

/// One benchmark's result, from criterion's `new/benchmark.json` and `new/estimates.json`.
#[derive(Debug)]
struct Measurement {
    /// Criterion's id, `group/function/value` without the missing parts, as `--list` prints it.
    full_id: String,
    group: String,
    function: Option<String>,
    value: Option<String>,
    throughput: Throughput,
    /// Median time per iteration, in nanoseconds.
    median_ns: f64,
}

/// Work done per iteration, as declared with criterion's `Throughput`.
#[derive(Debug, Default, Clone, Copy)]
struct Throughput {
    bytes: Option<u64>,
    elements: Option<u64>,
}

/// Rounds down to a whole second, so a file system that keeps coarse modification times never hides a result of this run.
fn whole_seconds(time: SystemTime) -> Result<SystemTime> {
    let since_epoch = time
        .duration_since(UNIX_EPOCH)
        .context("the clock is before 1970")?;
    Ok(UNIX_EPOCH + Duration::from_secs(since_epoch.as_secs()))
}

/// Every result under `dir` whose estimates were written at or after `since`, so results of earlier runs never appear.
fn collect(dir: &Path, since: SystemTime) -> Result<Vec<Measurement>> {
    let mut found = Vec::new();
    if dir.is_dir() {
        visit(dir, since, &mut found)?;
    }
    Ok(found)
}

fn visit(dir: &Path, since: SystemTime, found: &mut Vec<Measurement>) -> Result<()> {
    let entries = fs::read_dir(dir).with_context(|| format!("could not read {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("could not read {}", dir.display()))?
            .path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|name| name == "new") {
            if let Some(measurement) = read_measurement(&path, since)? {
                found.push(measurement);
            }
        } else {
            visit(&path, since, found)?;
        }
    }
    Ok(())
}

fn read_measurement(new_dir: &Path, since: SystemTime) -> Result<Option<Measurement>> {
    let estimates_path = new_dir.join("estimates.json");
    let benchmark_path = new_dir.join("benchmark.json");
    let Ok(modified) = fs::metadata(&estimates_path).and_then(|meta| meta.modified()) else {
        return Ok(None);
    };
    if modified < since {
        return Ok(None);
    }
    let estimates = read_json(&estimates_path)?;
    let benchmark = read_json(&benchmark_path)?;
    let median_ns = estimates
        .pointer("/median/point_estimate")
        .and_then(Value::as_f64)
        .with_context(|| format!("{} has no median.point_estimate", estimates_path.display()))?;
    let text = |field: &str| {
        benchmark
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let group = text("group_id")
        .with_context(|| format!("{} has no group_id", benchmark_path.display()))?;
    let full_id =
        text("full_id").with_context(|| format!("{} has no full_id", benchmark_path.display()))?;
    Ok(Some(Measurement {
        full_id,
        group,
        function: text("function_id"),
        value: text("value_str"),
        throughput: parse_throughput(benchmark.get("throughput")),
        median_ns,
    }))
}

fn read_json(path: &Path) -> Result<Value> {
    let text =
        fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("could not parse {}", path.display()))
}

/// Criterion serialises `Throughput` as `{"Bytes": n}`, `{"BytesDecimal": n}`, `{"Bits": n}`, `{"Elements": n}`
/// or `{"ElementsAndBytes": {"elements": n, "bytes": m}}`.
fn parse_throughput(value: Option<&Value>) -> Throughput {
    let Some(map) = value.and_then(Value::as_object) else {
        return Throughput::default();
    };
    let number = |key: &str| map.get(key).and_then(Value::as_u64);
    let both = map.get("ElementsAndBytes");
    let inner = |key: &str| both.and_then(|both| both.get(key)).and_then(Value::as_u64);
    Throughput {
        bytes: number("Bytes")
            .or_else(|| number("BytesDecimal"))
            .or_else(|| number("Bits").map(|bits| bits / 8))
            .or_else(|| inner("bytes")),
        elements: number("Elements").or_else(|| inner("elements")),
    }
}

/// The Markdown table: one row per benchmark, sorted by group, size and function.
fn render(results: &[Measurement]) -> String {
    let mut rows: Vec<&Measurement> = results.iter().collect();
    rows.sort_by(|a, b| sort_key(a).cmp(&sort_key(b)));
    let mut table = String::from(
        "| operation | size | median | throughput | × faster than reference |\n| --- | --- | ---: | ---: | ---: |\n",
    );
    for row in rows {
        let operation = match &row.function {
            Some(function) => format!("{}/{function}", row.group),
            None => row.group.clone(),
        };
        let size = match (row.throughput.bytes, &row.value) {
            (Some(bytes), _) => format_bytes(bytes),
            (None, Some(value)) => value.clone(),
            (None, None) => "—".to_owned(),
        };
        let ratio = reference(results, row)
            .filter(|_| row.median_ns > 0.0)
            .map_or_else(
                || "—".to_owned(),
                |reference| {
                    format!(
                        "{:.2}× {}",
                        reference.median_ns / row.median_ns,
                        reference.function.as_deref().unwrap_or_default()
                    )
                },
            );
        let cells = [
            escape(&operation),
            escape(&size),
            format_time(row.median_ns),
            format_throughput(row.throughput, row.median_ns),
            ratio,
        ];
        table.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    table
}

fn sort_key(m: &Measurement) -> (&str, Option<u64>, Option<&str>, Option<&str>) {
    let size = m
        .throughput
        .bytes
        .or_else(|| m.value.as_deref().and_then(|value| value.parse().ok()));
    (
        m.group.as_str(),
        size,
        m.value.as_deref(),
        m.function.as_deref(),
    )
}

/// The reference prefix and the operation of a reference function id (`ring` → `("ring", "")`,
/// `age-decrypt` → `("age", "decrypt")`); `None` if `function` is not a reference.
fn reference_parts(function: &str) -> Option<(&'static str, &str)> {
    REFERENCE_PREFIXES.into_iter().find_map(|prefix| {
        let rest = function.strip_prefix(prefix)?;
        if rest.is_empty() {
            Some((prefix, rest))
        } else {
            rest.strip_prefix('-').map(|operation| (prefix, operation))
        }
    })
}

/// The operation a row measures, to pair it with the reference of the same operation: a reference's own
/// (`age-decrypt` → `decrypt`), else what follows the implementation name (`tessera-decrypt` → `decrypt`), else
/// the whole id.
fn operation(function: &str) -> &str {
    match reference_parts(function) {
        Some((_, operation)) => operation,
        None => function
            .split_once('-')
            .map_or(function, |(_, operation)| operation),
    }
}

/// The reference benchmark of the same group and size: the one of the same operation (`tessera-decrypt` is
/// measured against `age-decrypt`), else one named exactly as a reference prefix (`ring`), else the first by name.
fn reference<'a>(results: &'a [Measurement], row: &Measurement) -> Option<&'a Measurement> {
    let row_operation = row.function.as_deref().map(operation);
    results
        .iter()
        .filter(|candidate| candidate.group == row.group && candidate.value == row.value)
        .filter_map(|candidate| {
            let function = candidate.function.as_deref()?;
            let (_, operation) = reference_parts(function)?;
            Some((
                Some(operation) != row_operation,
                !operation.is_empty(),
                function,
                candidate,
            ))
        })
        .min_by(|a, b| (a.0, a.1, a.2).cmp(&(b.0, b.1, b.2)))
        .map(|(_, _, _, candidate)| candidate)
}

fn format_time(ns: f64) -> String {
    if ns < 1e3 {
        format!("{ns:.1} ns")
    } else if ns < 1e6 {
        format!("{:.2} µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.2} s", ns / 1e9)
    }
}

fn format_bytes(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (unit, name) in UNITS {
        if bytes >= unit {
            if bytes.is_multiple_of(unit) {
                return format!("{} {name}", bytes / unit);
            }
            return format!("{:.1} {name}", bytes as f64 / unit as f64);
        }
    }
    format!("{bytes} B")
}

/// Bytes per second (decimal GB/s or MB/s) when the benchmark declares bytes, else operations per second.
fn format_throughput(throughput: Throughput, median_ns: f64) -> String {
    if median_ns <= 0.0 {
        return "—".to_owned();
    }
    if let Some(bytes) = throughput.bytes {
        let per_second = bytes as f64 * 1e9 / median_ns;
        return if per_second >= 1e9 {
            format!("{:.2} GB/s", per_second / 1e9)
        } else {
            format!("{:.2} MB/s", per_second / 1e6)
        };
    }
    let per_second = throughput.elements.unwrap_or(1) as f64 * 1e9 / median_ns;
    if per_second >= 1e6 {
        format!("{:.2} M ops/s", per_second / 1e6)
    } else if per_second >= 1e3 {
        format!("{:.2} k ops/s", per_second / 1e3)
    } else {
        format!("{per_second:.2} ops/s")
    }
}

fn escape(cell: &str) -> String {
    cell.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A fresh folder under the system temporary folder, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> Result<Self> {
            let nanos = SystemTime::now().duration_since(UNIX_EPOCH)?.as_nanos();
            let dir =
                std::env::temp_dir().join(format!("xtask-{name}-{}-{nanos}", std::process::id()));
            fs::create_dir_all(&dir)?;
            Ok(Self(dir))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// Writes a criterion result as criterion 0.8 lays it out: `<group>/<function>/<value>/new/*.json`.
    fn write_result(
        root: &Path,
        id: [Option<&str>; 3],
        throughput: Value,
        median_ns: f64,
    ) -> Result<PathBuf> {
        let [group, function, value] = id;
        let full_id = id.iter().flatten().copied().collect::<Vec<_>>().join("/");
        let dir = id
            .iter()
            .flatten()
            .fold(root.to_path_buf(), |dir, part| dir.join(part))
            .join("new");
        fs::create_dir_all(&dir)?;
        let benchmark = json!({
            "group_id": group, "function_id": function, "value_str": value, "throughput": throughput,
            "full_id": full_id, "directory_name": full_id, "title": full_id,
        });
        fs::write(dir.join("benchmark.json"), benchmark.to_string())?;
        let point = |estimate: f64| {
            json!({
                "confidence_interval": { "confidence_level": 0.95, "lower_bound": estimate, "upper_bound": estimate },
                "point_estimate": estimate, "standard_error": 0.0,
            })
        };
        let estimates = json!({
            "mean": point(median_ns * 1.1), "median": point(median_ns), "median_abs_dev": point(1.0),
            "slope": point(median_ns * 1.05), "std_dev": point(1.0),
        });
        let estimates_path = dir.join("estimates.json");
        fs::write(&estimates_path, estimates.to_string())?;
        Ok(estimates_path)
    }

    #[test]
    fn summarises_only_this_run_with_ratios_to_the_reference() -> Result<()> {
        let temp = TempDir::new("bench-summary")?;
        let root = &temp.0;
        let started = whole_seconds(SystemTime::now())?;
        let kib = json!({ "Bytes": 1024 });
        let mib = json!({ "Bytes": 1_048_576 });
        write_result(
            root,
            [Some("seal"), Some("tessera"), Some("1024")],
            kib.clone(),
            200.0,
        )?;
        write_result(
            root,
            [Some("seal"), Some("ring"), Some("1024")],
            kib.clone(),
            100.0,
        )?;
        write_result(
            root,
            [Some("seal"), Some("ring"), Some("1048576")],
            mib.clone(),
            100_000.0,
        )?;
        write_result(
            root,
            [Some("seal"), Some("tessera"), Some("1048576")],
            mib,
            125_000.0,
        )?;
        write_result(
            root,
            [Some("hkdf"), Some("expand"), None],
            Value::Null,
            120.0,
        )?;
        write_result(
            root,
            [Some("sign"), None, Some("1024")],
            json!({ "Elements": 4 }),
            2_000_000.0,
        )?;
        // The bulk benchmark: each operation against the `age` function of the same operation.
        let records = json!({ "Elements": 1000 });
        for (function, median_ns) in [
            ("age-encrypt", 1e9),
            ("tessera-encrypt", 1e8),
            ("age-decrypt", 8e8),
            ("age-decrypt-last", 2e9),
            ("tessera-decrypt", 1e7),
        ] {
            write_result(
                root,
                [Some("bulk"), Some(function), Some("1000x1KiB")],
                records.clone(),
                median_ns,
            )?;
        }
        let stale = write_result(root, [Some("seal"), Some("old"), Some("1024")], kib, 1.0)?;
        fs::File::options()
            .write(true)
            .open(stale)?
            .set_modified(started - Duration::from_secs(3600))?;

        let table = render(&collect(root, started)?);
        let expected = "\
| operation | size | median | throughput | × faster than reference |
| --- | --- | ---: | ---: | ---: |
| bulk/age-decrypt | 1000x1KiB | 800.00 ms | 1.25 k ops/s | 1.00× age-decrypt |
| bulk/age-decrypt-last | 1000x1KiB | 2.00 s | 500.00 ops/s | 1.00× age-decrypt-last |
| bulk/age-encrypt | 1000x1KiB | 1.00 s | 1.00 k ops/s | 1.00× age-encrypt |
| bulk/tessera-decrypt | 1000x1KiB | 10.00 ms | 100.00 k ops/s | 80.00× age-decrypt |
| bulk/tessera-encrypt | 1000x1KiB | 100.00 ms | 10.00 k ops/s | 10.00× age-encrypt |
| hkdf/expand | — | 120.0 ns | 8.33 M ops/s | — |
| seal/ring | 1 KiB | 100.0 ns | 10.24 GB/s | 1.00× ring |
| seal/tessera | 1 KiB | 200.0 ns | 5.12 GB/s | 0.50× ring |
| seal/ring | 1 MiB | 100.00 µs | 10.49 GB/s | 1.00× ring |
| seal/tessera | 1 MiB | 125.00 µs | 8.39 GB/s | 0.80× ring |
| sign | 1024 | 2.00 ms | 2.00 k ops/s | — |
";
        assert_eq!(table, expected);
        Ok(())
    }

    #[test]
    fn reads_the_ids_criterion_lists() {
        let output = "seal/ring/1024: benchmark\nseal/tessera/1024: benchmark\n\nhkdf/expand: benchmark\nnoise\n";
        let ids: Vec<String> = parse_list(output).into_iter().collect();
        assert_eq!(ids, ["hkdf/expand", "seal/ring/1024", "seal/tessera/1024"]);
    }

    #[test]
    fn a_missing_criterion_folder_gives_no_results() -> Result<()> {
        let temp = TempDir::new("bench-empty")?;
        assert!(collect(&temp.0.join("criterion"), UNIX_EPOCH)?.is_empty());
        Ok(())
    }

    #[test]
    fn humanises_sizes_and_throughputs() {
        assert_eq!(format_bytes(64), "64 B");
        assert_eq!(format_bytes(1536), "1.5 KiB");
        assert_eq!(format_bytes(64 << 20), "64 MiB");
        let mb = Throughput {
            bytes: Some(1000),
            elements: None,
        };
        assert_eq!(format_throughput(mb, 10_000.0), "100.00 MB/s");
        let parsed = parse_throughput(Some(
            &json!({ "ElementsAndBytes": { "elements": 2, "bytes": 64 } }),
        ));
        assert_eq!((parsed.bytes, parsed.elements), (Some(64), Some(2)));
    }
}
