"""klerk's tests: real Chromium, the real demo app, real files and databases."""
