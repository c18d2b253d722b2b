"""lm-eval task configs of lm_eval_pandalm (YAML only; installed as ``lm_eval_pandalm.task_configs``).

Point lm-eval at this folder with ``lm_eval --include_path "$(pandalm tasks-dir)"``, or use ``lm-eval-pandalm``.
"""
