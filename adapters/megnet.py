"""placeholder"""
from ct_plugins.adapter import Adapter
class MEGNetAdapter(Adapter):
    name = "megnet"; upstream = "matgl"; supported = ">=4.1,<4.2"
    def patch(self, table, mode="frozen"):
        raise NotImplementedError
