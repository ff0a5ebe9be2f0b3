# compose/env.sh — the Python environment of the README's two commands; sourced (not
# run) by compose/demo.sh and tests/run.sh. Never installs into a system Python
# (PEP 668, ADR 0016):
#
#   - a virtual environment is active ($VIRTUAL_ENV set): it is used as it is;
#   - otherwise the project's own one, .venv at the top of the checkout
#     ($EVENTMODEL_VENV to put it elsewhere), reused when it exists, else created with
#     the first Python >= 3.11 on PATH (python3, python3.13, python3.12, python3.11).
#     On Debian/Ubuntu, whose system Python lacks ensurepip without python3-venv, that
#     package is installed with apt-get (as root, or through sudo).
#
# Afterwards $VIRTUAL_ENV and PATH name that environment (its bin/ first, so
# `python3`, `python` and `eventmodel` are its own in every subprocess), $em_python is
# its interpreter, and `em_install EXTRA` installs the checkout editable with EXTRA.

em_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

em_die() { echo "env.sh: $*" >&2; exit 1; }
# true if $1 runs and is Python >= 3.11 (pyproject's requires-python)
em_py_ok() { "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; }
em_py_ver() { "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null || echo "?"; }
em_has_pip() { "$1" -m pip --version >/dev/null 2>&1; }

if [ -n "${VIRTUAL_ENV:-}" ]; then
  em_venv=$VIRTUAL_ENV
  [ -x "$em_venv/bin/python" ] || em_die "the active virtual environment $em_venv has no bin/python"
  em_py_ok "$em_venv/bin/python" \
    || em_die "the active virtual environment $em_venv runs Python $(em_py_ver "$em_venv/bin/python"); eventmodel needs >= 3.11"
  # a venv made without pip (uv venv, venv --without-pip) gets it from ensurepip
  em_has_pip "$em_venv/bin/python" || "$em_venv/bin/python" -m ensurepip -q >/dev/null \
    || em_die "the active virtual environment $em_venv has no pip and ensurepip failed"
  echo "env.sh: using the active virtual environment $em_venv (Python $(em_py_ver "$em_venv/bin/python"))" >&2
else
  em_venv=${EVENTMODEL_VENV:-$em_root/.venv}
  if [ -e "$em_venv/pyvenv.cfg" ] && ! { em_py_ok "$em_venv/bin/python" && em_has_pip "$em_venv/bin/python"; }; then
    # its base Python was removed or upgraded away, or an earlier creation failed half-way
    echo "env.sh: $em_venv cannot be used (its Python is gone or older than 3.11, or it has no pip): recreating it" >&2
    rm -rf "$em_venv"
  fi
  if [ ! -x "$em_venv/bin/python" ]; then
    [ ! -e "$em_venv" ] || em_die "$em_venv exists but is not a virtual environment; move it away or set EVENTMODEL_VENV"
    em_base=""
    for em_c in python3 python3.13 python3.12 python3.11; do
      if command -v "$em_c" >/dev/null && em_py_ok "$em_c"; then em_base=$(command -v "$em_c"); break; fi
    done
    [ -n "$em_base" ] || em_die "no Python >= 3.11 on PATH (Debian/Ubuntu: apt-get install python3 python3-venv)"
    em_ver=$(em_py_ver "$em_base")
    if ! "$em_base" -c 'import ensurepip, venv' >/dev/null 2>&1; then
      # Debian and Ubuntu ship venv's ensurepip in python3-venv (python3.X-venv)
      case $(readlink -f "$em_base") in
        /usr/bin/*) command -v apt-get >/dev/null \
                      || em_die "$em_base cannot create a virtual environment (no ensurepip) and there is no apt-get" ;;
        *) em_die "$em_base (Python $em_ver) cannot create a virtual environment: its ensurepip module is missing" ;;
      esac
      em_pkgs="python3-venv python${em_ver%.*}-venv"
      echo "env.sh: installing $em_pkgs with apt-get (for python3 -m venv) ..." >&2
      em_sudo=""; [ "$(id -u)" = 0 ] || em_sudo="sudo"
      # shellcheck disable=SC2086
      { $em_sudo apt-get update -q && DEBIAN_FRONTEND=noninteractive $em_sudo apt-get install -y -q $em_pkgs; } \
        >/tmp/eventmodel-apt-venv.log 2>&1 \
        || em_die "apt-get install $em_pkgs failed (see /tmp/eventmodel-apt-venv.log)"
      "$em_base" -c 'import ensurepip' >/dev/null 2>&1 || em_die "$em_base still has no ensurepip after apt-get install $em_pkgs"
    fi
    echo "env.sh: creating the virtual environment $em_venv with $em_base (Python $em_ver) ..." >&2
    "$em_base" -m venv "$em_venv" || { rm -rf "$em_venv"; em_die "$em_base -m venv $em_venv failed"; }
    # the pip that ensurepip bundles can be years old
    "$em_venv/bin/python" -m pip install -q --disable-pip-version-check -U pip \
      || echo "env.sh: could not upgrade pip in $em_venv; going on with $("$em_venv/bin/python" -m pip --version)" >&2
  else
    echo "env.sh: using the project's virtual environment $em_venv (Python $(em_py_ver "$em_venv/bin/python"))" >&2
  fi
fi

export VIRTUAL_ENV=$em_venv
export PATH="$em_venv/bin:$PATH"
unset PYTHONHOME
hash -r
em_python=$em_venv/bin/python

# em_install EXTRA: the checkout, editable, with that extra, into the environment above
em_install() {
  "$em_python" -m pip install -q --disable-pip-version-check -e "$em_root[$1]" \
    || em_die "pip install -e '$em_root[$1]' into $em_venv failed"
}
