from gpulab_identity.main import cli

raise SystemExit(cli())
