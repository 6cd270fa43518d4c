# shellcheck shell=bash
# Functions behind scripts/stack and scripts/replica-cluster. Sourced, not run.
# shellcheck source=scripts/lib/settings.sh
source "$REPO_DIR/scripts/lib/settings.sh"
# shellcheck source=scripts/lib/install.sh
source "$REPO_DIR/scripts/lib/install.sh"
# shellcheck source=scripts/lib/services.sh
source "$REPO_DIR/scripts/lib/services.sh"
