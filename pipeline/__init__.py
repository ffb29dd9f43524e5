"""The stages of the pipeline and what they share: the checkpoint schema (checkpoint.py), the run
folder, the training loop and its resume (trainer.py), the fine-tune (finetune.py) and the export
(export.py). Entry points call these; they call models/, compress/, data/, metrics/, report/ and util/."""
