from gpulab_notify.main import cli

raise SystemExit(cli())
