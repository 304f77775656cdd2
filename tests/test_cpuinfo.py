"""/proc/cpuinfo is read in one place: model name and flags, cached."""

from __future__ import annotations

from pathlib import Path

from npu_whisper_app.devices import cpu, cpu_native, cpuinfo

X86 = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx512f avx512_bf16 amx_bf16
vmx flags\t: vnmi ept
bugs\t\t: spectre_v1

processor\t: 1
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2
"""
ARM = """processor\t: 0
BogoMIPS\t: 50.00
Features\t: fp asimd bf16 i8mm
CPU implementer\t: 0x41
"""


def test_parse_takes_the_first_cpus_model_and_flags() -> None:
    info = cpuinfo.parse_cpuinfo(X86)
    assert info.model_name == "Intel(R) Xeon(R) Platinum 8480+"
    assert info.flags == {"fpu", "sse2", "avx512f", "avx512_bf16", "amx_bf16"}  # not "vmx flags", not cpu 1
    arm = cpuinfo.parse_cpuinfo(ARM)
    assert arm.model_name == "" and arm.flags == {"fp", "asimd", "bf16", "i8mm"}
    assert cpuinfo.parse_cpuinfo("") == cpuinfo.CpuInfo("", frozenset())


def test_read_once_and_used_by_both_devices_modules() -> None:
    assert cpuinfo.cpu_info() is cpuinfo.cpu_info()  # cached
    assert cpu.cpu_flags is cpuinfo.cpu_flags and cpu_native.cpu_signature is cpuinfo.cpu_signature
    if cpuinfo.cpu_flags():
        assert cpuinfo.cpu_signature() == " ".join(sorted(cpuinfo.cpu_flags()))
    package = Path(cpuinfo.__file__).resolve().parents[1]
    readers = [p.relative_to(package).as_posix() for p in package.rglob("*.py") if '"/proc/cpuinfo"' in p.read_text()]
    assert readers == ["devices/cpuinfo.py"]
