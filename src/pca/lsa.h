/* lsa.h — `dptrain lsa`: latent semantic indexing queries against a PCA of a text dataset.
 *
 *   dptrain lsa PCA.h5 [--data DATA.h5] [--near N] [--topics T] (--text "some words" | FILE...)
 *
 * A new document — words given with --text, or an e-mail file (RFC 822, or the corpus's JSON) read
 * as prep spam reads it — becomes its TF-IDF row with the dataset's vocabulary and idf (text_vocab:
 * prep's row), then is projected into the k-dimensional topic space with the fitted mean and
 * components: z = C (x − mean), as pca.transform projects. The training documents of the dataset
 * are projected the same way, and the N nearest by cosine are listed with their ids (/train/ids),
 * with the document's T strongest topics (largest |z_i|) and their top terms (/top_terms of
 * PCA.h5). DATA.h5 defaults to the data_path attribute that `dptrain pca` stores in PCA.h5. */
#ifndef DPT_LSA_H
#define DPT_LSA_H

/* Entry point; argv[0] is "lsa". Serial (rank 0 of any world does the work; others return 0).
 * Returns 0, LOG_EXIT_USAGE for bad options, LOG_EXIT_RUNTIME for unreadable files. */
int lsa_main(int argc, char **argv);

#endif
