"""The run core: one run folder from a typed config, whatever the model's family.

    train(cfg, run_dir, overrides)          cvlab.run.train: `cvlab train` in run_dir
    check_resume(cfg, source)               cvlab.run.resume: before any work, one line
    evaluate(run_dir, split, weights)       cvlab.run.evaluate: `cvlab eval`

The model type's spec (cvlab.models.registry) names its family (cvlab.families); the family
prepares the data, the model and the loop's task; the loop (cvlab.train.core) trains and keeps
the records; everything around the loop is here, once for every family. Run folders are read
through cvlab.records.reader and written through cvlab.records.
"""
