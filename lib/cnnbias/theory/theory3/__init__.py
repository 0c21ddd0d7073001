"""Closed forms and constructions of Theory of Deep Learning III (:cite:`theory_iii`), one module per topic."""
