"""The CPU a speed figure says it came from: model, vector features and cores, read from /proc/cpuinfo."""

from posterq.cpu import cpu_facts, describe, has_int8_dot_products

# Two processors of an AVX2-only CPU, as /proc/cpuinfo lists them (trimmed).
AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse4_1 sse4_2 avx f16c fma avx2 bmi2

processor\t: 1
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu sse4_1 sse4_2 avx f16c fma avx2 bmi2
"""
WITH_VNNI = """processor\t: 0
model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz
flags\t\t: fpu avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 amx_tile amx_int8
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes asimddp sve i8mm
CPU implementer\t: 0x41
"""


def test_an_avx2_only_cpu_has_no_int8_dot_products():
    facts = cpu_facts(AVX2_ONLY)
    assert facts == {"model": "AMD EPYC 7B12", "features": ["avx2", "fma"], "cores": 2}
    assert has_int8_dot_products(facts) is False
    assert describe(facts) == "AMD EPYC 7B12 (avx2, fma; 2 cores)"


def test_avx512_vnni_and_amx_are_named():
    facts = cpu_facts(WITH_VNNI)
    assert facts["model"].startswith("Intel(R) Xeon(R) Platinum 8375C")
    assert facts["features"] == ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                                 "amx_tile", "amx_int8"]
    assert facts["cores"] == 1
    assert has_int8_dot_products(facts) is True


def test_arm_features_are_read_from_their_own_line():
    facts = cpu_facts(ARM)
    assert facts["model"] == "unknown"
    assert facts["features"] == ["asimd", "asimddp", "i8mm", "sve"]
    assert has_int8_dot_products(facts) is True


def test_without_cpuinfo_the_features_are_unknown(monkeypatch, tmp_path):
    monkeypatch.setattr("posterq.cpu.CPUINFO", tmp_path / "absent")
    facts = cpu_facts()
    assert facts["features"] is None and has_int8_dot_products(facts) is None
    assert "vector features unknown" in describe(facts)


def test_a_figure_without_its_cpu_says_so():
    assert describe(None) == "a CPU not recorded"


def test_this_machine_is_read():
    facts = cpu_facts()
    assert facts["model"] and facts["cores"] >= 1 and isinstance(facts["features"], list)


def test_every_benchmark_provenance_carries_the_cpu():
    from bench.service import provenance

    machine = provenance()["machine"]
    assert machine["cpu"] == cpu_facts()


def test_a_result_file_says_as_much_of_its_cpu_as_it_recorded():
    from bench.report import recorded_cpu

    assert recorded_cpu({"cpu": cpu_facts(AVX2_ONLY), "cpus": 2}) == "AMD EPYC 7B12 (avx2, fma; 2 cores)"
    assert recorded_cpu({"cpu_model": "AMD EPYC", "cpus": 2}) == (
        "AMD EPYC (2 CPUs; vector features not recorded)")
    assert recorded_cpu({"cpus": 2}) == "2 CPUs (CPU not recorded)"
