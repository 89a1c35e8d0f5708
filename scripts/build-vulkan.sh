#!/usr/bin/env bash
# Builds ggml's Vulkan backend (libggml-vulkan.so) from the pinned Go module github.com/ollama/ollama
# with its own CMake files, as a loadable ggml backend, into $BPO_VULKAN_BUILD (default build/vulkan;
# the library lands in build/vulkan/lib/ollama). `make vulkan` runs this. bpo finds the library with
# --backend-dir, $BPO_BACKEND_DIR, or next to the binary (docs: README "Accelerators").
#
# What it needs, installed when missing and possible (root with apt-get): glslc, libvulkan-dev,
# mesa-vulkan-drivers (lavapipe, the software Vulkan device used by the tests) and cmake.
# Two gaps of Debian 12 (bookworm) are bridged here (DESIGN.md "Accelerators"):
#   1. bookworm's glslc reports unsupported extensions in the feature-test shaders with a message
#      ggml's CMake check does not recognise, so it turns cooperative matrices on and the shaders then
#      fail to compile; a wrapper turns those failures into the message the check expects.
#   2. ggml-vulkan.cpp needs Vulkan-Hpp headers newer than bookworm's 1.3.239 (vk::LayerSettingEXT):
#      the headers of trixie's libvulkan-dev are unpacked into the build folder (header-only, nothing is
#      installed; apt runs with a private state folder so the system's sources are not touched).
set -euo pipefail

GO=${GO:-go}
out=${BPO_VULKAN_BUILD:-build/vulkan}
jobs=${BPO_VULKAN_JOBS:-$(nproc)}
mkdir -p "$out"
out=$(cd "$out" && pwd)

say() { echo "vulkan: $*" >&2; }
die() { echo "vulkan: error: $*" >&2; exit 1; }

# The stamp bpo checks before it loads the library (ggml/device.go, BackendStamp): the sizes and counts
# of the ggml headers the library is compiled with, then the module they come from.
$GO mod download github.com/ollama/ollama >/dev/null 2>&1 || true
mod=$($GO list -m -f '{{.Dir}}' github.com/ollama/ollama)
[ -n "$mod" ] && [ -d "$mod" ] || die "could not find the module github.com/ollama/ollama (go mod download)"
stamp() {
	cat >"$out/abi.c" <<'C'
#include <stdio.h>
#include "ggml.h"
int main(void) {
	printf("ggml abi: tensor=%zu ops=%d unary=%d glu=%d types=%d dims=%d src=%d name=%d params=%d\n",
		sizeof(struct ggml_tensor), (int) GGML_OP_COUNT, (int) GGML_UNARY_OP_COUNT, (int) GGML_GLU_OP_COUNT,
		(int) GGML_TYPE_COUNT, GGML_MAX_DIMS, GGML_MAX_SRC, GGML_MAX_NAME, GGML_MAX_OP_PARAMS);
	return 0;
}
C
	${CC:-gcc} -I"$mod/ml/backend/ggml/ggml/include" -o "$out/abi" "$out/abi.c" || die "could not compile the stamp program $out/abi.c"
	"$out/abi"
	$GO list -m -f 'source: {{with .Replace}}{{.Path}} {{.Version}}{{else}}{{.Path}} {{.Version}}{{end}}' github.com/ollama/ollama
}

# Up to date: a library whose stamp names the same ggml headers and the same module version (module
# versions are immutable, so the sources are the same). A module replaced by a local folder always
# rebuilds. A library copied from another checkout of the same bpo is accepted this way too.
lib=$out/lib/ollama/libggml-vulkan.so
stamp_file=$out/lib/ollama/bpo-backend-stamp.txt
if [ -f "$lib" ] && [ -f "$stamp_file" ] && [ -z "$($GO list -m -f '{{with .Replace}}{{if not .Version}}local{{end}}{{end}}' github.com/ollama/ollama)" ] &&
	[ "$(stamp)" = "$(cat "$stamp_file")" ]; then
	say "up to date: $lib ($(head -1 "$stamp_file"))"
	exit 0
fi

# 1. Tools and the Vulkan loader + software driver.
need=()
command -v glslc >/dev/null || need+=(glslc)
command -v cmake >/dev/null || need+=(cmake)
[ -f /usr/include/vulkan/vulkan.h ] || need+=(libvulkan-dev)
ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 || need+=(mesa-vulkan-drivers)
if [ ${#need[@]} -gt 0 ]; then
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		say "installing ${need[*]} with apt-get"
		DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null 2>&1 ||
			{ apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y "${need[@]}" >/dev/null; } ||
			die "apt-get install ${need[*]} failed"
	else
		die "missing ${need[*]}: install them (Debian: apt-get install -y ${need[*]}) or run as root"
	fi
fi

# 2. Vulkan-Hpp headers that have vk::LayerSettingEXT.
hpp_include=/usr/include
if ! grep -q 'struct LayerSettingEXT' /usr/include/vulkan/vulkan_structs.hpp 2>/dev/null; then
	hpp_include=$out/vulkan-hpp/usr/include
	if ! grep -q 'struct LayerSettingEXT' "$hpp_include/vulkan/vulkan_structs.hpp" 2>/dev/null; then
		say "system Vulkan-Hpp headers lack vk::LayerSettingEXT; unpacking trixie's libvulkan-dev headers"
		apt_dir=$out/apt
		mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
		uri=$(sed -n 's/^URIs: *\(.*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
		echo "deb ${uri:-http://deb.debian.org/debian} trixie main" >"$apt_dir/sources.list"
		apt_opts=(-o Dir::Etc::SourceList="$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
			-o Dir::State::Lists="$apt_dir/lists" -o Dir::Cache="$apt_dir/cache"
			-o Dir::State::Status=/dev/null -o APT::Get::List-Cleanup=false -o Debug::NoLocking=true)
		apt-get "${apt_opts[@]}" update >/dev/null 2>&1 || die "apt-get update of trixie's package list failed (needs the Debian mirror)"
		(cd "$apt_dir/debs" && apt-get "${apt_opts[@]}" download libvulkan-dev >/dev/null 2>&1) ||
			die "apt-get download libvulkan-dev (trixie) failed"
		rm -rf "$out/vulkan-hpp.tmp" && mkdir -p "$out/vulkan-hpp.tmp"
		dpkg -x "$apt_dir"/debs/libvulkan-dev_*.deb "$out/vulkan-hpp.tmp"
		grep -q 'struct LayerSettingEXT' "$out/vulkan-hpp.tmp/usr/include/vulkan/vulkan_structs.hpp" ||
			die "trixie's libvulkan-dev has no vk::LayerSettingEXT either"
		rm -rf "$out/vulkan-hpp" && mv "$out/vulkan-hpp.tmp" "$out/vulkan-hpp"
	fi
fi

# 3. glslc wrapper for ggml's feature tests.
real_glslc=$(command -v glslc)
cat >"$out/glslc" <<WRAP
#!/bin/sh
# glslc for ggml's CMake: when a feature-test shader fails to compile (the module may not even carry
# it), the feature is reported with the message ggml's check looks for, so it is turned off.
for a in "\$@"; do
	case "\$a" in
	*feature-tests/*.comp)
		"$real_glslc" "\$@" && exit 0
		for ext in GL_KHR_cooperative_matrix GL_NV_cooperative_matrix2 GL_EXT_integer_dot_product GL_EXT_bfloat16; do
			echo "extension not supported: \$ext" >&2
		done
		exit 1 ;;
	esac
done
exec "$real_glslc" "\$@"
WRAP
chmod +x "$out/glslc"

# 4. Configure the module's CMake project and build the ggml-vulkan target.
say "configuring $mod into $out"
cmake -S "$mod" -B "$out" -DCMAKE_BUILD_TYPE=Release \
	-DVulkan_GLSLC_EXECUTABLE="$out/glslc" \
	-DVulkan_INCLUDE_DIR="$hpp_include" \
	-DCMAKE_CXX_FLAGS="-isystem $hpp_include" >"$out/configure.log" 2>&1 ||
	{ tail -30 "$out/configure.log" >&2; die "cmake configure failed (log: $out/configure.log)"; }
grep -q 'Vulkan found' "$out/configure.log" || die "CMake did not find Vulkan (log: $out/configure.log)"
say "building ggml-vulkan with $jobs jobs"
cmake --build "$out" --target ggml-vulkan -j "$jobs" >"$out/build.log" 2>&1 ||
	{ tail -30 "$out/build.log" >&2; die "build failed (log: $out/build.log)"; }
[ -f "$lib" ] || die "the build did not produce $lib"
say "built $lib"
stamp >"$stamp_file.tmp"
mv "$stamp_file.tmp" "$stamp_file"
say "stamp: $(head -1 "$stamp_file")"
