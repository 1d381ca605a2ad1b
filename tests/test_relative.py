"""The report says plainly when a compressed artifact runs slower than fp32, and when the cost model is far off."""

from edgepack.bench.relative import compare_with_fp32
from edgepack.report import ArtifactResult, HostLatency, Report, summary_rows


def artifact(target, precision, p50, estimate=None, role=None):
    result = ArtifactResult(target, precision, f"{target}/model-{precision}", role=role)
    result.latency_ms.host = HostLatency(p50, p50 * 1.1, 1)
    if estimate is not None:
        result.latency_ms.host.estimate = {"estimate": estimate, "measured_p50": p50,
                                                 "estimate_over_measured": estimate / p50}
    return result


def test_slower_than_fp32_is_noted_and_faster_is_not():
    fp32, int8, int4 = artifact("tflite", "fp32", 16.0), artifact("tflite", "int8-dynamic", 5.0), \
        artifact("tflite", "int4-weight", 80.0)
    onnx_int8 = artifact("onnx", "int8-dynamic", 20.0)  # no onnx fp32 in this run: nothing to compare with
    notes = compare_with_fp32([fp32, int8, int4, onnx_int8])
    assert int8.latency_ms.host.speedup_vs_fp32 == 16.0 / 5.0 and not int8.notes
    assert int4.latency_ms.host.speedup_vs_fp32 == 0.2
    assert int4.notes == ["slower than tflite fp32 on this host: p50 80.00 ms vs 16.00 ms (5.0x the time); "
                          "here it saves size, not time"]
    assert notes == [f"tflite/int4-weight: {int4.notes[0]}"]
    assert fp32.latency_ms.host.speedup_vs_fp32 is None and onnx_int8.latency_ms.host.speedup_vs_fp32 is None
    header, rows = summary_rows(Report("m", "r", "t", None, [fp32, int8, int4]))
    column = header.index("speed-up vs fp32")
    assert [row[column] for row in rows] == ["-", "3.20x", "0.20x"]


def test_a_first_timing_that_says_slower_is_confirmed_or_overturned_by_alternating_re_timings():
    fp32, burst, real = artifact("onnx", "fp32", 16.0), artifact("onnx", "int8-static", 20.0), \
        artifact("onnx", "int4-weight", 20.0)
    again = {"fp32": [16.0, 17.0, 16.5, 16.0, 16.2, 16.1], "int8-static": [9.0, 9.5, 8.8],
             "int4-weight": [30.0, 31.0, 29.0]}  # the burst hit int8-static's first timing only
    calls = []

    def retime(result):
        calls.append(result.precision)
        return again[result.precision].pop(0)

    notes = compare_with_fp32([fp32, burst, real], retime)
    assert calls == ["int8-static", "fp32"] * 3 + ["int4-weight", "fp32"] * 3  # alternating, only when slower
    assert burst.latency_ms.host.speedup_vs_fp32 == 16.5 / 9.0 and not burst.notes
    assert real.latency_ms.host.speedup_vs_fp32 == 16.1 / 30.0
    assert notes == ["onnx/int4-weight: slower than onnx fp32 on this host: median p50 of 3 alternating re-timings "
                     "30.00 ms vs 16.10 ms (1.9x the time); here it saves size, not time"]


def test_teacher_and_student_compare_with_their_own_fp32():
    teacher, student = artifact("onnx", "fp32", 10.0, role="teacher"), artifact("onnx", "fp32", 5.0, role="student")
    student_int8 = artifact("onnx", "int8-dynamic", 2.5, role="student")
    compare_with_fp32([teacher, student, student_int8])
    assert student_int8.latency_ms.host.speedup_vs_fp32 == 2.0


def test_cost_model_far_off_its_host_measurement_is_noted():
    close, far = artifact("onnx", "fp32", 10.0, estimate=15.0), artifact("tflite", "int4-weight", 80.0, estimate=14.0)
    notes = compare_with_fp32([close, far])
    assert not close.notes
    assert far.notes == ["the cost model's host estimate is x0.17 this host's measurement (14.00 vs 80.00 ms): "
                         "trust its device estimates less; measure on the device (`edgepack measure`)"]
    assert notes == [f"tflite/int4-weight: {far.notes[0]}"]
