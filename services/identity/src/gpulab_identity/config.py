from gpulab_core.settings import CoreSettings


class Settings(CoreSettings):
    metrics_port: int = 9101
