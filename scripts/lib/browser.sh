# shellcheck shell=bash
# The browser the console's tests drive: Debian's headless Chromium and its WebDriver
# (packages chromium and chromium-driver). Sourced by scripts/test.sh.

# Makes sure chromium and chromedriver are installed, installing Debian's packages when they
# are missing; exports BILLHOOK_TEST_CHROMIUM and BILLHOOK_TEST_CHROMEDRIVER. Fails, saying
# what is missing and how to install it, when that cannot be done.
browser_ensure() {
  local chromium chromedriver sudo=()
  chromium=${BILLHOOK_TEST_CHROMIUM:-$(command -v chromium || true)}
  chromedriver=${BILLHOOK_TEST_CHROMEDRIVER:-$(command -v chromedriver || true)}
  if [ -z "$chromium" ] || [ -z "$chromedriver" ]; then
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "chromium and chromedriver not found, and this machine has no apt-get: the console's browser tests need them." >&2
      echo "Install Chromium and a matching ChromeDriver, then set BILLHOOK_TEST_CHROMIUM and BILLHOOK_TEST_CHROMEDRIVER to their paths." >&2
      return 1
    fi
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then
        sudo=(sudo -n)
      else
        echo "chromium and chromedriver not found: run 'apt-get install chromium chromium-driver' as root (the console's browser tests need them)." >&2
        return 1
      fi
    fi
    echo "installing Debian's chromium and chromium-driver (the console's browser tests drive them)"
    if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; then
      "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null || true
      if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium chromium-driver >/dev/null; then
        echo "installing chromium and chromium-driver failed: install them (apt-get install chromium chromium-driver) and run scripts/test.sh again." >&2
        return 1
      fi
    fi
    chromium=$(command -v chromium || true)
    chromedriver=$(command -v chromedriver || true)
  fi
  if [ ! -x "$chromium" ] || [ ! -x "$chromedriver" ]; then
    echo "chromium ($chromium) or chromedriver ($chromedriver) is not an executable: the console's browser tests need both." >&2
    return 1
  fi
  export BILLHOOK_TEST_CHROMIUM=$chromium BILLHOOK_TEST_CHROMEDRIVER=$chromedriver
  echo "browser: $("$chromium" --version 2>/dev/null | head -n 1), $("$chromedriver" --version 2>/dev/null | head -n 1)"
}
