from gpulab_gateway.main import cli

raise SystemExit(cli())
