"""capas: build, train and understand neural networks on PyTorch."""
