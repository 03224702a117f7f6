# Headless Chromium and ChromeDriver from Debian, for examples/server/tests/browser.rs.
# Sourced by scripts/test: no `exit`; quick when both are already installed.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver
fi
