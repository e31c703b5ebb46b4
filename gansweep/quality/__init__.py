"""Sample quality in the units the field uses: FID and KID of G's samples against real
images, in the features of Inception (read from a local weights file) or, for data Inception
does not fit, of a classifier trained on the data set's own training split."""
