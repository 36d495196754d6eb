#!/usr/bin/env bash
# placeholder: filled in by its own change
set -euo pipefail
