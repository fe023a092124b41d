# Local stand-in for mariadb:11 (Debian's MariaDB 10.11), built by scripts/base-images from a
# debootstrap rootfs with mariadb-server on machines that cannot pull from an image registry.
ARG ROOTFS_IMAGE
FROM ${ROOTFS_IMAGE}
ENV LANG=C.UTF-8
# The package's postinst made a data directory (root by unix socket only): empty it, as in the
# official image, so that the entrypoint initialises a fresh volume from the MARIADB_* variables.
RUN rm -rf /var/lib/mysql \
    && install -d -o mysql -g mysql -m 0750 /var/lib/mysql \
    && install -d -o mysql -g mysql /run/mysqld
COPY mariadb-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
VOLUME /var/lib/mysql
EXPOSE 3306
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["mariadbd"]
