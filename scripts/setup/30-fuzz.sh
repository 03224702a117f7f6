# Sourced by scripts/test and scripts/fuzz: installs what coverage-guided fuzzing
# needs when it is missing. cargo-fuzz drives libFuzzer, which the libfuzzer-sys
# crate builds from source with the C++ compiler. Quick when all is installed.
# shellcheck shell=bash
if ! command -v c++ >/dev/null 2>&1; then
  echo "== fuzz setup: installing a C++ compiler (libFuzzer is built from source)"
  apt-get update -qq && apt-get install -y -qq g++ >/dev/null
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "== fuzz setup: installing cargo-fuzz"
  cargo install cargo-fuzz --locked --quiet
fi
