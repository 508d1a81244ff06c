"""Datasets: built-in generators, real-data loaders and the DataBundle they return."""

from workbench.data.base import DataBundle, DataInfo

__all__ = ["DataBundle", "DataInfo"]
