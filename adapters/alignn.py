"""placeholder"""
from ct_plugins.adapter import Adapter
class ALIGNNAdapter(Adapter):
    name = "alignn"; upstream = "alignn"; supported = ">=2026.8,<2026.9"
    def patch(self, table, mode="frozen"):
        raise NotImplementedError
