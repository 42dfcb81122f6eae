from gpulab_scheduler.main import cli

raise SystemExit(cli())
