"""CrystalTransformer pretraining (installed as ct_plugins.pretrain)."""
