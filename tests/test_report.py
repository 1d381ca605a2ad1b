"""The headline table never shows a bare "pass" for an artifact that could not run here; failures name the artifact."""

from edgepack.gates import Check
from edgepack.report import ArtifactResult, HostLatency, Report, summary_rows, to_markdown


def test_an_artifact_not_run_here_passes_on_its_file_checks_only():
    ran = ArtifactResult("onnx", "fp32", "onnx/model-fp32.onnx", sha256="0" * 64, size_bytes=1000)
    ran.latency_ms.host = HostLatency(10.0, 11.0, 1)
    unrun = ArtifactResult("coreml", "fp32", "coreml/model-fp32.mlpackage", sha256="1" * 64,
                           size_bytes=500, not_run="Core ML runs only on macOS")
    header, rows = summary_rows(Report("m", "r", "t", None, [ran, unrun]))
    result = header.index("result")
    assert [row[result] for row in rows] == ["pass", "pass (file checks only)"]
    assert rows[1][header.index("host p50/p90 ms")] == "not run here"
    assert "pass (file checks only)" in to_markdown(Report("m", "r", "t", None, [ran, unrun]))


def test_a_failure_names_teacher_or_student():
    failed = [ArtifactResult("onnx", "int8-dynamic", "onnx/student-model-int8-dynamic.onnx", role=role,
                             checks=[Check("max_accuracy_drop", False, "over")]) for role in ("teacher", "student")]
    assert Report("m", "r", "t", None, failed).failures() == [
        "onnx/teacher int8-dynamic: max_accuracy_drop: over", "onnx/student int8-dynamic: max_accuracy_drop: over"]
