"""Report sections for accuracy-aware compression: what the search tried and kept, and teacher vs student."""

from __future__ import annotations


def search_lines(search: dict) -> list[str]:
    """Markdown for one artifact's search record."""
    verdict = "met" if search["passed"] else "did NOT meet"
    lines = ["", f"Accuracy-aware search: kept `{search['kept']}` ({search['kept_because']}); it {verdict} "
             f"max_accuracy_drop {search['max_accuracy_drop']:.4f} where it was scored (the artifact's own checks "
             "below are on the evaluation samples). Spent {search['spent_s']:.0f} s of a "
             f"{search['budget_s']:.0f} s budget ({search['stopped_by']}); sensitivity measured for "
             f"{search['layers_measured']} of {search['layers_total']} layers. Candidates scored on "
             f"{search.get('selected_on', 'the evaluation samples')}.", ""]
    if search["layers_in_float"]:
        lines += ["Layers left in float, and why:", ""]
        lines += [f"- `{layer}`: {why}" for layer, why in search["layers_in_float"].items()]
    else:
        lines.append("No layer left in float.")
    if search["sensitivity_top"]:
        lines += ["", "Layers that hurt most when quantized alone (relative output error, accuracy drop):", ""]
        lines += [f"- `{s['layer']}`: {s['error']:.3g}, {s['drop']:.4f}" for s in search["sensitivity_top"]]
    lines += ["", "| candidate | variant | layers in float | drop | passed | host p50 ms |",
              "|---|---|---|---|---|---|"]
    for c in search["candidates"]:
        p50 = "-" if c["host_p50_ms"] is None else f"{c['host_p50_ms']:.2f}"
        lines.append(f"| {c['name']} | {c['variant']} | {c['layers_in_float']} | {c['drop']:.4f} | "
                     f"{'yes' if c['passed'] else 'no'} | {p50} |")
    return lines


def compression_sections(report) -> list[str]:
    """Teacher and student side by side, when the report has a distillation record."""
    d = report.distillation
    if not d:
        return []
    lines = ["", "## Distillation: teacher vs student", "",
             f"Student: {d['student_layers']} of the teacher's {d['teacher_layers']} layers (kept {d['layers_kept']}), "
             f"{d['student_parameters']:,} parameters vs {d['teacher_parameters']:,}; trained {d['steps_run']} steps "
             f"in {d['train_seconds']:.0f} s on {d.get('training_texts', str(d['texts']) + ' texts')} (stopped by "
             f"the {d['stopped_by']}); objective: {d['objective']}. Both are scored against the teacher's PyTorch "
             "outputs.", "",
             "| precision | teacher size MB | student size MB | teacher p50 ms | student p50 ms | speed-up | "
             "teacher accuracy | student accuracy |", "|---|---|---|---|---|---|---|---|"]
    by = {(a.role, a.target, a.precision): a for a in report.artifacts}
    for (role, target, precision), student in by.items():
        teacher = by.get(("teacher", target, precision))
        if role != "student" or teacher is None:
            continue
        t_host, s_host = teacher.latency_ms.host, student.latency_ms.host
        speed = f"{t_host.p50 / s_host.p50:.2f}x" if t_host and s_host else "-"

        def size(a):
            return f"{a.size_bytes / 1e6:.1f}" if a.size_bytes else "-"

        def acc(a):
            return f"{a.accuracy.metric} {a.accuracy.value:.4f}" if a.accuracy else "-"

        def p50(host):
            return f"{host.p50:.2f}" if host else "-"

        lines.append(f"| {target}/{precision} | {size(teacher)} | {size(student)} | {p50(t_host)} | {p50(s_host)} "
                     f"| {speed} | {acc(teacher)} | {acc(student)} |")
    return lines
