#!/usr/bin/env bash
# Place the offline get-pip stand-in where ansible-test looks for its cached copy.
# Usage: install-get-pip-standin.sh PYTHON  (the Python that has ansible-test installed)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
python=${1:?usage: install-get-pip-standin.sh PYTHON}
source_file=$("$python" -c 'import ansible_test._internal.python_requirements as m; print(m.__file__)')
pip_version=$(sed -n "s/^ *pip='\([0-9.]*\)',\$/\1/p" "$source_file" | head -n 1)
if [ -z "$pip_version" ]; then
    echo "install-get-pip-standin: cannot find the pip version ansible-test bootstraps in $source_file" >&2
    exit 1
fi
cache_dir="$HOME/.ansible/test/cache"
mkdir -p "$cache_dir"
install -m 0644 "$here/get_pip_offline.py" "$cache_dir/get_pip_${pip_version//./_}.py"
