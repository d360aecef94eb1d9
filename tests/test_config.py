import fastinfo as fi
from fastinfo import _kernels


def test_show_config_prints_version_compiler_openmp_threads(capsys):
    fi.show_config()
    out = capsys.readouterr().out
    assert out.startswith(f"fastinfo {fi.__version__}")
    assert "compiler" in out and _kernels.compiler() in out
    assert f"openmp" in out and str(_kernels.openmp_enabled()) in out
    assert "default_threads" in out


def test_public_names_exported():
    for name in fi.__all__:
        assert hasattr(fi, name), name
