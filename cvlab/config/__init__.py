"""The config layer: the commands' schemas (cvlab.config.train, cvlab.config.commands), their
registration in Hydra's ConfigStore (store), composition with every sweep job checked
(compose) and the one validation point that turns a composition into typed dataclasses
(typed). The check helpers the schemas use live below it, in cvlab.validation.
"""
