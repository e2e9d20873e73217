"""The results table (Markdown) from the results dict that ``benchmarks.run`` builds."""

from __future__ import annotations

from typing import Any

from benchmarks.approaches import LABELS

TARGET_SPEEDUP = 8.0
TARGET_FLOOR_RATIO = 1.5
TARGET_RSS_MB = 1024.0
TARGET_LATENCY_S = 1.0
TARGET_FILES_PER_S = 100.0
TARGET_FLAT = 1.2
"""The last tenth of the small files at most 20% slower per file than the first."""


def _num(value: float | None, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


def _ok(flag: bool) -> str:
    return "met" if flag else "**missed**"


def _size_rows(size: dict[str, Any]) -> list[str]:
    lines = []
    for name, s in size["approaches"].items():
        lines.append(
            f"| {size['rows']:,} | {LABELS.get(name, name)} | {s['rows_per_s']:,.0f} | "
            f"{s['wall_s']:.2f} | {s['wall_min_s']:.2f}-{s['wall_max_s']:.2f} | "
            f"{s['cpu_s']:.1f} | {s['peak_rss_mb']:,.0f} |"
        )
    return lines


def ratios(size: dict[str, Any], measure: str = "wall_s") -> dict[str, float]:
    """``a/b`` and ``a/c``: salesflow's median wall (or CPU) time over the others'."""
    a = size["approaches"].get("salesflow")
    out: dict[str, float] = {}
    if a is None:
        return out
    for key, other in (("a/b", "pandas"), ("a/c", "polars_floor")):
        if other in size["approaches"]:
            out[key] = a[measure] / size["approaches"][other][measure]
    return out


def spark_lines(results: dict[str, Any]) -> list[str]:
    """The Spark engine against the Polars engine, and its 1 -> 2 core scaling, per size."""
    lines: list[str] = []
    for size in results["sizes"]:
        runs = size["approaches"]
        one, two, polars = runs.get("spark_local1"), runs.get("spark_local2"), runs.get("salesflow")
        if one is None or two is None:
            continue
        line = (
            f"- {size['rows']:,} rows ({one['runs']} run(s) each): Spark local[1] "
            f"{one['wall_s']:.1f} s, local[2] "
            f"{two['wall_s']:.1f} s (1 -> 2 cores: speed-up {one['wall_s'] / two['wall_s']:.2f}x)"
        )
        if polars is not None:
            line += (
                f"; the Polars engine {polars['wall_s']:.1f} s, so Spark local[2] is "
                f"{two['wall_s'] / polars['wall_s']:.1f}x slower on this machine"
            )
        sessions = [s["session_s"] for s in (one, two) if "session_s" in s]
        if sessions:
            line += f"; starting the session took {max(sessions):.1f} s more (not in wall)"
        lines.append(line + ".")
    if not lines:
        return []
    return [
        "",
        "Spark engine (`--engine spark`, same pipeline; CPU and RSS are the Python driver's "
        "only, the JVM is a child process):",
        "",
        *lines,
    ]


def _targets(results: dict[str, Any]) -> list[str]:
    largest = max(results["sizes"], key=lambda s: s["rows"])
    r = ratios(largest)
    lines = [f"Targets at {largest['rows']:,} rows:", ""]
    if "a/b" in r:
        speedup = 1 / r["a/b"]
        lines.append(
            f"- salesflow >= {TARGET_SPEEDUP:g}x faster than pandas: "
            f"{speedup:.1f}x, {_ok(speedup >= TARGET_SPEEDUP)}"
        )
    if "a/c" in r:
        lines.append(
            f"- salesflow within {TARGET_FLOOR_RATIO:g}x of the Polars floor: "
            f"{r['a/c']:.2f}x, {_ok(r['a/c'] <= TARGET_FLOOR_RATIO)}"
        )
    a = largest["approaches"].get("salesflow")
    if a is not None:
        lines.append(
            f"- salesflow peak RSS < 1 GB: {a['peak_rss_mb']:,.0f} MB, "
            f"{_ok(a['peak_rss_mb'] < TARGET_RSS_MB)}"
        )
    lat = results.get("latency")
    if lat:
        lines.append(
            f"- drop-to-`salesflow kpis` latency < 1 s: {lat['visible_median_s']:.2f} s, "
            f"{_ok(lat['visible_median_s'] < TARGET_LATENCY_S)}"
        )
    small = results.get("small_files")
    if small:
        growth = small["last_median_ms"] / small["first_median_ms"]
        lines += [
            f"- at least {TARGET_FILES_PER_S:g} small files/s: {small['files_per_second']:.1f}/s "
            f"over {small['files']:,} one-event files, "
            f"{_ok(small['files_per_second'] >= TARGET_FILES_PER_S)}",
            f"- small files flat (last {small['window']:,} within 20% of the first, median per "
            f"file): {small['first_median_ms']:.1f} vs {small['last_median_ms']:.1f} ms "
            f"({growth - 1:+.0%}), {_ok(growth <= TARGET_FLAT)}; "
            f"{small['fragments_at_end']} lake fragments at the end",
        ]
    big = results.get("big_file")
    if big:
        from benchmarks.bigfile import render as render_big

        lines += render_big(big)
    return lines


def render(results: dict[str, Any]) -> str:
    m = results["machine"]
    out = [
        "# salesflow benchmark results",
        "",
        f"{m['date']}, commit {m.get('revision', '?')}, {m['cpus']} CPUs, "
        f"Python {m['python']}, Polars {m['polars']}, "
        f"pandas {m['pandas']}; median of {results['repeat']} run(s), each in a fresh process. "
        "rows/s counts order_items rows; wall is the timed work (imports excluded); CPU is "
        "user+sys seconds of the timed work over all threads; peak RSS is the process's "
        "(wait4 ru_maxrss).",
        "",
        "| rows | approach | rows/s | wall s | min-max s | CPU s | peak RSS MB |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for size in results["sizes"]:
        out += _size_rows(size)
    out += [
        "",
        "| rows | CSV MB | a/b wall | speedup b/a | a/c wall | a/b CPU | a/c CPU | load | agree |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for size in results["sizes"]:
        r, c = ratios(size), ratios(size, "cpu_s")
        speedup = 1 / r["a/b"] if r.get("a/b") else None
        loads = [x for s in size["approaches"].values() for x in s["load_before"]]
        out.append(
            f"| {size['rows']:,} | {size['csv_mb']:,.0f} | {_num(r.get('a/b'), '.3f')} | "
            f"{_num(speedup, '.1f')}x | {_num(r.get('a/c'), '.2f')} | "
            f"{_num(c.get('a/b'), '.3f')} | {_num(c.get('a/c'), '.2f')} | "
            f"{max(loads):.1f} | {'yes' if size['agree'] else '**NO**'} |"
        )
    out += spark_lines(results)
    lat = results.get("latency")
    if lat:
        out += [
            "",
            f"Latency, {lat['drops']} drops of {lat['items_per_drop']} order items into a running "
            f"`salesflow run` ({lat['preloaded_rows']:,} rows pre-loaded, "
            "SALESFLOW_BATCHING__DATASETS=[], --quiet-seconds 0): median "
            f"{lat['visible_median_s']:.2f} s until `salesflow kpis --json` shows the day "
            f"(service done after {lat['service_median_s']:.2f} s; one `salesflow kpis` call "
            f"takes {lat['kpis_cli_median_s']:.2f} s).",
        ]
    out += [
        "",
        "load: the highest 1-minute load average seen before a run of that size (2 CPUs; "
        "above ~2, other processes competed for the CPUs and wall times are inflated).",
        "",
        *_targets(results),
        "",
    ]
    if "outside" in results:
        from benchmarks.outside import render as render_outside

        out += [*render_outside(results["outside"]), ""]
    if "outside_error" in results:
        out += ["", f"The outside reference jobs failed: {results['outside_error']}", ""]
    return "\n".join(out)
