"""Classification fine-tuning on ScanObjectNN / ModelNet40 (the `finetune_cls` job)."""
