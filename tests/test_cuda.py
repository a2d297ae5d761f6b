"""The cuda backend (CuPy on NVIDIA GPUs): CPU-side checks everywhere, GPU checks where a GPU works.

Without a GPU these tests still check:

* registration: the backend is listed, reports itself unavailable with the
  reason, and the default choice falls through to another backend;
* the CUDA C: every kernel source (the RawKernel files and the rendered
  Elementwise/Reduction kernels) compiles with nvcc (skipped only when nvcc is
  absent), and with NVRTC where CuPy's NVRTC library loads;
* the backend's own code: its op kernels, storage methods and trainer rules
  run over NumPy with every CUDA C kernel compiled for the host
  (``dynet_backends.cuda.hostemu``) and pass the whole conformance suite
  against the reference, plus hand-computed values for the raw kernels;
* mixing backends: a parameter of one backend in a graph of another fails
  when the expression is built.

The GPU tests are skipped with the backend's own reason when it is unavailable.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
import scipy.special
from dynet_backends import cuda as cuda_pkg
from dynet_backends.cuda import cusrc, hostemu
from dynet_backends.cuda.backend import CudaBackend
from dynet_backends.cuda.device import INSTALL_HINT, CupyDevice

import dynet_api as dy
from dynet_api.backend import BackendUnavailable
from dynet_api.conformance.runner import verify
from dynet_api.conformance.samples import compute_ops
from dynet_api.conformance.switch import using
from dynet_api.dim import Dim
from dynet_api.graph import _cg
from dynet_api.plugins import registry

F32 = np.float32


def _cuda_status():
    registry.discover()
    if "cuda" not in registry.records:
        return None, "the cuda backend is not registered (entry point 'cuda' of dynet_api.backends)"
    rec = registry.load("cuda")
    return rec.backend, rec.error


CUDA, REASON = _cuda_status()
needs_gpu = pytest.mark.skipif(CUDA is None, reason=f"cuda backend unavailable: {REASON}")
# A development environment installed before the backend existed lacks its entry point; CI installs afresh.
needs_entry_point = pytest.mark.skipif(
    "cuda" not in registry.records and not os.environ.get("CI"),
    reason="the 'cuda' entry point is not installed in this environment (reinstall the project)")
NVCC = shutil.which("nvcc")


@pytest.fixture(scope="module")
def emu() -> CudaBackend:
    """The cuda backend's code over NumPy, its CUDA C compiled for the CPU."""
    if hostemu.find_cxx() is None:
        pytest.skip("no host C++ compiler for the emulated device")
    b = CudaBackend(hostemu.HostDevice(), ("HOSTEMU:0",), "cuda_hostemu")
    b.seed(1234)
    return b


# ================================================================ registration and availability


@needs_entry_point
def test_cuda_is_registered_with_priority_above_the_cpu_backends():
    assert "cuda" in registry.names()
    spec = registry.records["cuda"].spec
    assert spec.priority == cuda_pkg.PRIORITY
    for other in ("reference_numpy", "cpu_eigen"):
        if other in registry.records:
            assert spec.priority > registry.records[other].spec.priority


@needs_entry_point
def test_status_is_available_or_names_the_reason():
    rec = registry.load("cuda")
    if rec.backend is not None:
        assert rec.backend.devices and all(d.startswith("GPU:") for d in rec.backend.devices)
        return
    assert rec.error.startswith("BackendUnavailable: ")
    reasons = ("cupy is not installed", "cupy cannot be imported", "no CUDA device", "CUDA device present but")
    assert any(r in rec.error for r in reasons), rec.error


@needs_entry_point
def test_backends_command_lists_cuda_with_its_status(capsys):
    from dynet_api.__main__ import main

    assert main(["backends"]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("cuda ")]
    assert len(rows) == 1
    if CUDA is None:
        assert "unavailable: BackendUnavailable:" in rows[0]
        assert REASON.split(": ", 1)[1] in rows[0]
    else:
        assert "available" in rows[0] and "GPU:0" in rows[0]


def test_default_choice_skips_an_unavailable_cuda():
    if CUDA is not None:
        assert registry.best() is CUDA
    else:
        assert registry.best().name != "cuda"


def test_factory_without_cupy_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` raise ImportError
    with pytest.raises(BackendUnavailable) as e:
        cuda_pkg.make_backend()
    assert str(e.value) == INSTALL_HINT == "cupy is not installed (pip install 'dynet_api[cuda]')"


def _fake_cupy(get_count):
    runtime = types.SimpleNamespace(getDeviceCount=get_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime))


def test_factory_without_a_device_names_the_cupy_error(monkeypatch):
    def no_device():
        raise RuntimeError("cudaErrorNoDevice:\n  no CUDA-capable device is detected")

    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(no_device))
    with pytest.raises(BackendUnavailable) as e:
        cuda_pkg.make_backend()
    assert str(e.value) == "no CUDA device: RuntimeError: cudaErrorNoDevice: no CUDA-capable device is detected"
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(lambda: 0))
    with pytest.raises(BackendUnavailable, match="^no CUDA device: the CUDA runtime sees 0 devices$"):
        cuda_pkg.make_backend()


# ================================================================ the CUDA C sources


def test_kernel_sources_are_found_and_parsed():
    names = {p.name for p in cusrc.raw_files()}
    assert {"indexing.cu", "losses.cu", "lstm.cu"} <= names
    sigs = {s.name: s for s in cusrc.kernel_signatures(cusrc.raw_module_source())}
    assert set(sigs) == {"dn_index_add", "dn_pick_fwd", "dn_pick_bwd", "dn_pnls_fwd", "dn_pnls_bwd",
                         "dn_hinge_fwd", "dn_hinge_bwd", "dn_lstm_gates_fwd", "dn_lstm_gates_bwd"}
    p = sigs["dn_index_add"].params
    assert [(q.ctype, q.pointer, q.const) for q in p[:3]] == [("float", True, False), ("float", True, True),
                                                              ("int", True, True)]
    # NVRTC has no include path: the module source has every local include inlined, once.
    src = cusrc.raw_module_source()
    assert '#include "' not in src and src.count("#define DN_DEVICE_MATH_CUH") == 1


def test_missing_kernel_file_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match="kernel source .*nope.cu is missing"):
        cusrc.source("nope.cu")


@pytest.mark.skipif(NVCC is None, reason="nvcc is not on the PATH")
def test_nvcc_compiles_every_kernel_source(tmp_path):
    spec = tmp_path / "spec_kernels.cu"
    spec.write_text(cusrc.render_spec_kernels())
    sources = cusrc.raw_files() + [spec]
    procs = []
    for src in sources:
        cmd = [NVCC, "-c", "-I", str(cusrc.KERNEL_DIR), "-o", str(tmp_path / (src.stem + ".o")), str(src)]
        procs.append((src, subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)))
    failed = []
    for src, p in procs:
        out, _ = p.communicate(timeout=300)
        if p.returncode != 0:
            failed.append(f"{src.name}:\n{out}")
    assert not failed, "\n".join(failed)
    assert all((tmp_path / (s.stem + ".o")).stat().st_size > 0 for s in sources)


def _nvrtc():
    try:
        from cupy_backends.cuda.libs import nvrtc

        nvrtc.getVersion()
        return nvrtc
    except Exception:  # no CuPy, or no NVRTC library: the nvcc test still runs
        return None


@pytest.mark.skipif(_nvrtc() is None, reason="CuPy's NVRTC library is not loadable here")
def test_nvrtc_compiles_the_sources_as_cupy_sees_them():
    nvrtc = _nvrtc()
    spec = cusrc.render_spec_kernels().replace('#include "elementwise.cuh"', cusrc.elementwise_preamble())
    for name, src in (("raw_module.cu", cusrc.raw_module_source()), ("spec_kernels.cu", spec)):
        prog = nvrtc.createProgram(src, name, [], [])
        try:
            nvrtc.compileProgram(prog, ["-arch=compute_75"])
        except Exception as e:
            pytest.fail(f"NVRTC rejected {name}: {e}\n{nvrtc.getProgramLog(prog)}")


def test_cupy_kernel_objects_construct():
    cupy = pytest.importorskip("cupy")
    dev = CupyDevice(cupy)  # parses every parameter list; compiling waits for the first call
    assert len(dev.ew) == len(cusrc.ELEMENTWISE) and len(dev.red) == len(cusrc.REDUCTIONS) and len(dev.raw) == 7


# ================================================================ the backend's code, emulated on the host


def test_emulated_backend_passes_the_conformance_suite(emu):
    rep = verify(emu, "reference_numpy", fd=False, edge_examples=10)
    bad = [f"{r.name} {r.case}: {'; '.join(r.messages)}" for r in rep.failures()]
    assert rep.ok, "\n".join(bad[:20])
    s = rep.summary()
    assert s["op"]["passed"] == len(compute_ops()) and s["op"]["unsupported"] == []
    assert s["trainer"]["failed"] == [] and s["trainer"]["checked"] >= 9
    assert s["leaf"]["checked"] == 4 and s["random"]["checked"] == 4


def test_scatter_add_sums_repeated_rows(emu):
    table = emu.zeros((2, 4))  # 4 rows of 2 values: rows run along the last axis
    emu.scatter_add_batch(table, [3, 0, 3], emu.from_numpy(np.array([[1, 2, 3], [4, 5, 6]], F32)))
    np.testing.assert_array_equal(emu.to_numpy(table), [[2, 0, 0, 4], [5, 0, 0, 10]])
    emu.clear_rows(table, [3])
    np.testing.assert_array_equal(emu.to_numpy(table), [[2, 0, 0, 0], [5, 0, 0, 0]])


def test_class_loss_kernels_on_hand_computed_columns(emu):
    x = emu.from_numpy(np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 0.5]], F32))  # two columns
    d = Dim((1,), 2)
    lse0 = math.log(math.exp(1) + math.exp(2) + math.exp(3))
    lse1 = math.log(math.exp(1) + math.exp(2) + math.exp(0.5))
    y = emu.forward_kernels["pickneglogsoftmax"]([x], ((2, 0),), d)
    np.testing.assert_allclose(emu.to_numpy(y), [[lse0 - 3.0, lse1 - 1.0]], rtol=1e-6)
    g = emu.backward_kernels["pickneglogsoftmax"]([x], y, emu.ones((1, 2)), ((2, 0),), d, 0)
    soft = np.exp(np.array([[1, 1], [2, 2], [3, 0.5]]) - [lse0, lse1])
    np.testing.assert_allclose(emu.to_numpy(g), soft - [[0, 1], [0, 0], [1, 0]], rtol=1e-5)
    # hinge, margin 1, gold rows 0 and 1: column 0 has terms 2 - 1 + 1 = 2 and 3 - 1 + 1 = 3,
    # column 1 has 1 - 2 + 1 = 0 (inactive) and 0.5 - 2 + 1 < 0
    h = emu.forward_kernels["hinge"]([x], ((0, 1), 1.0), d)
    np.testing.assert_allclose(emu.to_numpy(h), [[5.0, 0.0]])
    gh = emu.backward_kernels["hinge"]([x], h, emu.from_numpy(np.array([[1.0, 2.0]], F32)), ((0, 1), 1.0), d, 0)
    np.testing.assert_allclose(emu.to_numpy(gh), [[-2, 0], [1, 0], [1, 0]])


@pytest.mark.parametrize("pcols,bcols", [(1, 1), (3, 1), (1, 3), (3, 3)])
def test_lstm_gate_kernels_match_the_reference(emu, pcols, bcols):
    """dn_lstm_gates_fwd / _bwd against the reference's array code, with the products and the bias
    each batched or broadcast over the batch."""
    from dynet_backends.reference_numpy.kernels import Kernels

    rng = np.random.default_rng(5)
    ref = Kernels(np, scipy.special, None)
    n = 5
    pre = rng.normal(size=(4 * n, pcols)).astype(np.float32)
    b = rng.normal(size=(4 * n, bcols)).astype(np.float32)
    want = ref._gates_activate(pre, b, n)
    got = emu.ops._gates_activate(pre, b, n)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert got.shape == (4 * n, max(pcols, bcols))
    dy = rng.normal(size=want.shape).astype(np.float32)
    np.testing.assert_allclose(emu.ops._gates_pre_grad(want, dy, n), ref._gates_pre_grad(want, dy, n),
                               rtol=1e-6, atol=1e-6)


def test_digamma_matches_scipy_and_never_hangs(emu):
    """lgamma's gradient is digamma: the CUDA C one against hand-computed values and scipy.special (the reference's)."""
    import scipy.special

    k = emu.dev.ew["lgamma_b"]
    x = np.array([1.0, 0.5, 10.0, -0.5], F32)
    g = k(x, x, np.ones_like(x))
    # -gamma, -gamma - 2 ln 2, H_9 - gamma, 2 - gamma - 2 ln 2
    np.testing.assert_allclose(g, [-0.5772156649, -1.9635100260, 2.2517525891, 0.0364899740], rtol=1e-6)
    # huge negative inputs (a recurrence from there would run for ages) and the poles
    far = np.array([-65529.5, -1e6 - 0.5, -3.0, -1e30, -np.inf, np.inf, 0.0, -0.0, np.nan], F32)
    got = k(far, far, np.ones_like(far))
    want = scipy.special.digamma(far.astype(np.float64))
    np.testing.assert_allclose(got, want.astype(F32), rtol=1e-6)
    assert np.isnan(got[[2, 3, 4, 8]]).all() and got[5] == np.inf and got[6] == -np.inf and got[7] == np.inf


def test_sq_norm_accumulates_in_double(emu):
    t = emu.from_numpy(np.full((3, 5), 1e-3, F32))
    assert emu.sq_norm(t) == pytest.approx(15 * float(F32(1e-3)) ** 2, rel=1e-12)
    assert emu.sq_norm(t, [1, 4]) == pytest.approx(6 * float(F32(1e-3)) ** 2, rel=1e-12)


def test_raw_kernel_arguments_are_checked(emu):
    k = emu.dev.raw["dn_index_add"]
    dst, src, idx = np.zeros((1, 3, 1), F32), np.ones((1, 2, 1), F32), np.array([0, 2], np.int32)
    with pytest.raises(TypeError, match="dn_index_add: parameter src needs float32, got float64"):
        k(1, 1, dst, src.astype(np.float64), idx, 1, 3, 2, 1)
    with pytest.raises(ValueError, match="dn_index_add: parameter dst must be C-contiguous"):
        k(1, 1, np.zeros((3, 2), F32).T, src, idx, 1, 3, 2, 1)
    with pytest.raises(TypeError, match="8 arguments for 7 parameters"):
        k(1, 1, dst, src, idx, 1, 3, 2, 1, 5)
    with pytest.raises(TypeError, match="input x is float64, the kernel takes float32"):
        emu.dev.ew["tanh_f"](np.zeros(3))
    with pytest.raises(ValueError, match="unknown update rule 'nope'"):
        emu.update("nope", emu.zeros((2, 1)), emu.zeros((2, 1)), [], None, {})


def test_index_arrays_are_sent_once(emu):
    assert emu.dev.index((3, 1, 2)) is emu.dev.index([3, 1, 2])
    assert emu.dev.index((3, 1, 2)).dtype == np.int32


def test_parameters_live_on_their_collections_backend(emu):
    with using(emu):
        pc = dy.ParameterCollection()
        W = pc.add_parameters((2, 3), init=1.0)
        L = pc.add_lookup_parameters((4, 2), init=0.5)
        assert W._st.backend is emu and L._st.backend is emu
        loss = dy.sum_elems(W * dy.inputVector([1.0, 2.0, 3.0]) + L[2])
        assert loss.value() == pytest.approx(2 * 6.0 + 2 * 0.5)


def test_mixing_backends_fails_when_the_expression_is_built(emu):
    ref = registry.get("reference_numpy")
    with using(ref):
        pc_ref = dy.ParameterCollection()
        W_ref = pc_ref.add_parameters((2, 2))
    with using(emu):
        pc_emu = dy.ParameterCollection()
        L_emu = pc_emu.add_lookup_parameters((3, 2))
        x = dy.inputVector([1.0, 2.0])
        n = len(_cg.nodes)
        with pytest.raises(RuntimeError, match="lives on backend 'reference_numpy' but the graph runs on "
                                                "'cuda_hostemu'"):
            W_ref * x
        with pytest.raises(RuntimeError, match="lives on backend 'reference_numpy'"):
            dy.parameter(W_ref)
        assert len(_cg.nodes) == n  # nothing was added to the graph
    with using(ref):
        with pytest.raises(RuntimeError, match="lives on backend 'cuda_hostemu' but the graph runs on "
                                                "'reference_numpy'"):
            dy.lookup(L_emu, 1)


# ================================================================ on a GPU


@needs_gpu
def test_gpu_verify_passes_every_check():
    rep = verify("cuda", "reference_numpy", fd=False, edge_examples=10)
    bad = [f"{r.name} {r.case}: {'; '.join(r.messages)}" for r in rep.failures()]
    assert rep.ok, "\n".join(bad[:20])
    assert rep.summary()["op"]["passed"] == len(compute_ops())


@needs_gpu
def test_gpu_values_stay_on_the_device():
    import cupy

    with using(CUDA):
        pc = dy.ParameterCollection()
        W = pc.add_parameters((3, 4))
        L = pc.add_lookup_parameters((10, 4))
        assert isinstance(W._st.value, cupy.ndarray) and isinstance(L._st.grad, cupy.ndarray)
        h = dy.tanh(W * L[3])
        loss = dy.squared_norm(h)
        loss.forward()
        assert isinstance(_cg.executor.value(h.i), cupy.ndarray)
        loss.backward()
        assert isinstance(_cg.executor.gradient(h.i), cupy.ndarray)
        v = h.npvalue()
        assert isinstance(v, np.ndarray) and v.shape == (3,)
        trainer = dy.AdamTrainer(pc)
        trainer.update()
        assert isinstance(W._st.value, cupy.ndarray)


@needs_gpu
def test_gpu_class_losses_and_scatter_on_large_inputs():
    """Many rows per lane (warp reductions) and much-repeated scatter rows (atomics): beyond the emulation."""
    from dynet_backends.reference_numpy import kernels as K

    rng = np.random.default_rng(5)
    n, b = 1000, 7
    x = (rng.standard_normal((n, b)) * 3).astype(F32)
    idx = tuple(int(i) for i in rng.integers(0, n, b))
    d = Dim((1,), b)
    xd = CUDA.from_numpy(x)
    dyv = rng.standard_normal((1, b)).astype(F32)
    for op, attrs in (("pickneglogsoftmax", (idx,)), ("hinge", (idx, 0.5))):
        y_ref = K.FWD[op]([x], attrs, d)
        y = CUDA.forward_kernels[op]([xd], attrs, d)
        np.testing.assert_allclose(CUDA.to_numpy(y), y_ref, rtol=1e-4, atol=1e-4)
        g_ref = K.BWD[op]([x], y_ref, dyv, attrs, d, 0)
        g = CUDA.backward_kernels[op]([xd], y, CUDA.from_numpy(dyv), attrs, d, 0)
        np.testing.assert_allclose(CUDA.to_numpy(g), g_ref, rtol=1e-4, atol=1e-5)
    rows = rng.integers(0, 50, 20000)
    src = rng.standard_normal((8, rows.size)).astype(F32)
    want = np.zeros((8, 50), F32)
    np.add.at(want, (Ellipsis, rows), src)
    got = CUDA.zeros((8, 50))
    CUDA.scatter_add_batch(got, rows.tolist(), CUDA.from_numpy(src))
    np.testing.assert_allclose(CUDA.to_numpy(got), want, rtol=1e-4, atol=1e-3)
