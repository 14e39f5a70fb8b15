"""LoRA fine-tuning of CogVideoX image-to-video and its data preparation (``vt cogvideo
prepare-metadata``, ``download-*``, ``train-lora``). Nothing heavy is imported here."""
