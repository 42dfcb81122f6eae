from gpulab_inventory.main import cli

raise SystemExit(cli())
