"""Check for notebook 04's GPT.forward: logits from the embeddings through the Blocks, ln_f and the LM head,
the loss, causality and the embedding dropout. Probes: gpt_forward_probes.py; judges: gpt_forward_judges.py.

Trust: a probe runs beside the student's code, so what it returns is a claim. The probes fill every weight from
the test's secret seed and draw the tokens from it, but report only the model's layout and forward's outputs;
the judges redraw the weights and tokens themselves and compute the expected logits and loss with the reference,
so a forged result must be the right answer for weights and tokens seen only inside the sandbox.

With n_layer=0 the logits are computable from the embeddings, ln_f and the LM head (and the loss from them); with
n_layer=2 forward hooks record each Block's input and output, so the judge sees that the Blocks run in order on its
own embeddings and that the logits come from the last one. The embedding dropout is checked by recording the
dropout calls in training mode: what each one dropped (the sum of the embeddings, once) and what became of it.
The gradients after loss.backward(): with n_layer=0 the judge recomputes those of wte, wpe and ln_f; with
n_layer=2 every parameter must get one (a .detach() or torch.no_grad() in forward leaves some without).
"""

from __future__ import annotations

from coursekit.checks.core import Check, Test, is_module_class
from coursekit.checks.gpt_forward_judges import (blocks_judge, causal_judge, embedding_dropout_judge,
                                                 embeddings_judge, gradient_judge, loss_judge, loss_none_judge)
from coursekit.checks.gpt_forward_probes import (blocks_probe, embedding_dropout_probe, embeddings_probe,
                                                 gradient_probe, loss_probe)

check_forward = Check(
    exercise="forward",
    expects=["the class GPT itself, with its forward(idx, targets=None) -> (logits, loss)"],
    accepts=[is_module_class],
    tests=[
        Test("n_layer=0: logits = lm_head(ln_f(token + position embeddings))", embeddings_probe, embeddings_judge,
             weight=4.0),
        Test("without targets the loss is None", loss_probe, loss_none_judge, weight=0.5),
        Test("with targets: cross-entropy over all B * T positions", loss_probe, loss_judge, weight=3.0),
        Test("n_layer=2: logits (B, T, vocab_size), no position sees the future", blocks_probe, causal_judge,
             weight=1.5),
        Test("n_layer=2: the Blocks run in order on the embeddings, then ln_f and the LM head", blocks_probe,
             blocks_judge, weight=3.0),
        Test("dropout(config.dropout) on the sum of the embeddings, once, in training", embedding_dropout_probe,
             embedding_dropout_judge, weight=1.0),
        Test("loss.backward() reaches every parameter: the embeddings, the Blocks, ln_f", gradient_probe,
             gradient_judge, weight=1.5),
    ],
)
