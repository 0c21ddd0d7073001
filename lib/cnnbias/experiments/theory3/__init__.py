"""Part IV, Theory of Deep Learning III (:cite:`theory_iii`): one module per chapter."""
