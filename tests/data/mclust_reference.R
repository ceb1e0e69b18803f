# Reference partitions from R's mclust for tests/test_hc_mclust.py.
#
# Writes mclust's model-based hierarchical agglomeration (its default start: model "VVV" on
# the hcUse = "SVD" transform of the data, every row its own starting cluster) cut at
# K = 2..10, for Old Faithful and for iris (scikit-learn's copy, four features), one column
# per K, labels as mclust's hclass gives them; and mclust's BIC grid (its 14 models x
# K = 1..6, mclustBIC with its defaults, mclust's sign: higher is better; NA where mclust
# reports no fit). Run from the repository root with the two
# data sets written as headerless CSV:
#
#   Rscript tests/data/mclust_reference.R faithful.csv iris.csv
#
# Made with mclust 6.0.0 (R 4.2.2, Debian 12, reference BLAS/LAPACK; OpenBLAS gives the
# same partitions).
suppressMessages(library(mclust))
args <- commandArgs(trailingOnly = TRUE)
for (i in seq_along(args)) {
  X <- as.matrix(read.csv(args[i], header = FALSE))
  name <- c("faithful", "iris")[i]
  cl <- hclass(hc(X, modelName = "VVV", use = "SVD"), 2:10)
  write.csv(cl, sprintf("tests/data/mclust_hc_%s.csv", name), row.names = FALSE, quote = FALSE)
  bic <- mclustBIC(X, G = 1:6, verbose = FALSE)
  write.csv(round(bic[, ], 4), sprintf("tests/data/mclust_bic_%s.csv", name), quote = FALSE)
}
cat("mclust", as.character(packageVersion("mclust")), "\n")
