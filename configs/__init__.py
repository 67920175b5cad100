"""The shipped experiment configs, one YAML file per runnable variant (``jaxrnn list`` shows them).

This folder is installed as the package ``jaxrnn.configs``, so that the
configs travel with jaxrnn; this file only makes it a package.
"""
